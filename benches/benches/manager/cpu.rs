//! CPU accounting by thread name: the manager runs on its own tokio
//! runtime (threads named [`MANAGER_THREAD`]) plus the raft log writer
//! thread (`raft-wal`), so its CPU time can be told apart from the load
//! generator's, which shares the process. Also the machine's load, since
//! the 2 cores here are shared with other builds.

use std::time::{Duration, Instant};

/// Name of the manager runtime's threads (workers and blocking pool).
pub const MANAGER_THREAD: &str = "mgr-rt";
/// Name of the load generator runtime's threads.
pub const LOAD_THREAD: &str = "load-rt";
/// Threads the manager starts outside its runtime.
const MANAGER_EXTRA: &[&str] = &["raft-wal"];

/// CPU time of this process's threads, split by owner.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    /// Manager runtime + raft WAL thread.
    pub manager: Duration,
    /// Everything else in this process (load generator, main thread).
    pub other: Duration,
    /// Whole machine busy time (all cores, all processes), from /proc/stat.
    pub machine_busy: Duration,
    /// When the sample was taken.
    pub at: Option<Instant>,
}

/// CPU used between two samples.
#[derive(Debug, Clone, Copy)]
pub struct CpuDelta {
    /// Manager CPU time.
    pub manager: Duration,
    /// The rest of this process (load generator).
    pub other: Duration,
    /// Other processes on the machine.
    pub foreign: Duration,
    /// Wall time.
    pub wall: Duration,
}

impl CpuDelta {
    /// Manager CPU as a fraction of one core.
    pub fn manager_cores(&self) -> f64 {
        self.manager.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// A line saying where the cores went.
    pub fn describe(&self) -> String {
        let w = self.wall.as_secs_f64().max(1e-9);
        format!(
            "over {:.1} s: manager {:.2} cores, load generator {:.2} cores, other processes {:.2} cores (of {})",
            w,
            self.manager.as_secs_f64() / w,
            self.other.as_secs_f64() / w,
            self.foreign.as_secs_f64() / w,
            cores(),
        )
    }
}

/// Number of cores online.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl CpuSample {
    /// Reads every thread of this process and the machine totals.
    pub fn now() -> CpuSample {
        let mut s = CpuSample {
            at: Some(Instant::now()),
            machine_busy: machine_busy(),
            ..CpuSample::default()
        };
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return s;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let name = name.trim_end();
            let Some(cpu) = thread_cpu(&path) else {
                continue;
            };
            if name.starts_with(MANAGER_THREAD) || MANAGER_EXTRA.contains(&name) {
                s.manager += cpu;
            } else {
                s.other += cpu;
            }
        }
        s
    }

    /// What was used since `earlier`.
    pub fn since(&self, earlier: &CpuSample) -> CpuDelta {
        let manager = self.manager.saturating_sub(earlier.manager);
        let other = self.other.saturating_sub(earlier.other);
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy);
        CpuDelta {
            manager,
            other,
            foreign: busy.saturating_sub(manager + other),
            wall: match (self.at, earlier.at) {
                (Some(a), Some(b)) => a.saturating_duration_since(b),
                _ => Duration::ZERO,
            },
        }
    }
}

/// A thread's CPU time: nanoseconds from schedstat, else ticks from stat.
fn thread_cpu(task: &std::path::Path) -> Option<Duration> {
    if let Ok(s) = std::fs::read_to_string(task.join("schedstat"))
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
    {
        return Some(Duration::from_nanos(ns));
    }
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold
    // spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Busy time of all cores (user + nice + system + irq + softirq + steal).
fn machine_busy() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Duration::ZERO;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return Duration::ZERO;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(busy * 10)
}

/// The machine's load averages (1, 5, 15 minutes), as /proc/loadavg says.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
