//! Killing the task processes a SIGKILLed node left behind.
//!
//! The process executor runs each task in its own process group and
//! records `<pid> <start time>` in `<state>/tasks/<task id>/pid`. A group
//! is killed only when the process with that pid still has that start
//! time, so a recycled pid is never hit.

use std::path::Path;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Kills every recorded task process group under `state_dir` that still
/// runs.
pub(super) fn kill_leftover_tasks(state_dir: &Path) {
    for pid in live_task_processes(state_dir) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The pids of the task processes recorded under `state_dir` that still
/// run (same pid, same start time).
pub fn live_task_processes(state_dir: &Path) -> Vec<i32> {
    let mut live = Vec::new();
    let Ok(entries) = std::fs::read_dir(state_dir.join("tasks")) else {
        return live;
    };
    for entry in entries.flatten() {
        let Ok(record) = std::fs::read_to_string(entry.path().join("pid")) else {
            continue;
        };
        let mut parts = record.split_whitespace();
        let (Some(Ok(pid)), Some(Ok(started))) = (
            parts.next().map(str::parse::<i32>),
            parts.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if pid > 1 && start_time(pid) == Some(started) && !is_zombie(pid) {
            live.push(pid);
        }
    }
    live
}

/// True when `pid` exited and waits to be reaped.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Start time of `pid` in clock ticks since boot (field 22 of its stat).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are
    // counted from the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}
