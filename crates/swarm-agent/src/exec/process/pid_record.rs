//! The record of a task's process: `<pid> <start time>` in the task's
//! directory, so that the process can be found again after the agent (or
//! the whole node) died, and a recycled pid is never mistaken for it.

use std::fs;
use std::path::{Path, PathBuf};

/// Name of the record in a task's directory.
pub const PID_FILE: &str = "pid";

/// A task process: its pid and its start time (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    /// The process id (also its process group id: tasks lead their group).
    pub pid: i32,
    /// When it started, in clock ticks since boot (field 22 of its stat).
    pub started: u64,
}

impl PidRecord {
    /// The record of the running process `pid`; `None` when it is gone.
    pub fn of(pid: i32) -> Option<PidRecord> {
        start_time(pid).map(|started| PidRecord { pid, started })
    }

    /// Reads the record in `task_dir`; `None` when there is none or it is
    /// unreadable (a half-written record names no process).
    pub fn read(task_dir: &Path) -> Option<PidRecord> {
        let text = fs::read_to_string(path(task_dir)).ok()?;
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        let started = parts.next()?.parse().ok()?;
        Some(PidRecord { pid, started })
    }

    /// Writes the record into `task_dir`.
    pub fn write(&self, task_dir: &Path) -> std::io::Result<()> {
        fs::write(path(task_dir), format!("{} {}\n", self.pid, self.started))
    }

    /// True while a process with the recorded pid and start time exists
    /// (perhaps a zombie whose group still has members): the process
    /// group may be signalled.
    pub fn is_same_process(&self) -> bool {
        self.pid > 1 && start_time(self.pid) == Some(self.started)
    }

    /// True while the recorded process runs: the same process, and not a
    /// zombie waiting to be reaped.
    pub fn is_alive(&self) -> bool {
        self.is_same_process()
            && stat_fields(self.pid).is_some_and(|f| f.first().is_some_and(|s| *s != "Z"))
    }
}

fn path(task_dir: &Path) -> PathBuf {
    task_dir.join(PID_FILE)
}

/// The fields of `/proc/<pid>/stat` after the command name (which may
/// hold spaces and parentheses): state first.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Start time (clock ticks since boot) of `pid`.
fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The task processes recorded under a process executor's task root
/// (one directory per task) that still run.
pub fn live_task_processes(tasks_root: &Path) -> Vec<PidRecord> {
    let Ok(entries) = fs::read_dir(tasks_root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| PidRecord::read(&e.path()))
        .filter(PidRecord::is_alive)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_record_names_this_process_until_the_start_time_differs() {
        let dir = std::env::temp_dir().join(format!("swarm-pidrec-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let me = PidRecord::of(i32::try_from(std::process::id()).unwrap()).unwrap();
        me.write(&dir).unwrap();
        let read = PidRecord::read(&dir).unwrap();
        assert_eq!(read, me);
        assert!(read.is_alive());
        assert!(live_task_processes(dir.parent().unwrap()).contains(&me));
        let recycled = PidRecord {
            started: me.started + 1,
            ..me
        };
        assert!(!recycled.is_alive(), "same pid, other start time");
        fs::write(dir.join(PID_FILE), "12 x\n").unwrap();
        assert_eq!(PidRecord::read(&dir), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
