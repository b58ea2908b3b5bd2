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
    let tasks = state_dir.join(swarm_agent::agent::TASKS_DIR);
    swarm_agent::exec::process::live_task_processes(&tasks)
        .iter()
        .map(|r| r.pid)
        .collect()
}
