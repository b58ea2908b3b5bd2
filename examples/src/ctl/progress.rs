//! Following a service until it converges, like `docker service create`
//! without `--detach`.
//!
//! [`assess`] is the pure core: a service and its tasks in, per-slot
//! states and a verdict out. [`Reporter`] turns successive assessments into
//! the lines to print (only what changed). The polling loop lives in
//! `swarmctl`'s service commands (`ctl::commands`).

use std::collections::BTreeMap;

use swarm_api::EnumName;
use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::{Service, Task, TaskState, UpdateState};

/// Where a service stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Tasks are still moving towards the spec.
    Converging,
    /// Every slot runs the current spec (jobs: every completion is done).
    Converged,
    /// The rollout stopped: paused or rolled back, with the reason.
    Stopped(String),
}

/// One assessment of a service's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Slot label (`1/3`, or a node id for global services) -> state text.
    pub slots: BTreeMap<String, String>,
    /// Tasks done (running, or complete for jobs) and tasks wanted.
    pub done: u64,
    /// Tasks wanted (0 while a global service has no tasks yet).
    pub total: u64,
    /// Errors of current tasks that failed or were rejected.
    pub errors: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
}

fn current<'a>(service: &'a Service, tasks: &'a [Task]) -> impl Iterator<Item = &'a Task> + 'a {
    tasks
        .iter()
        .filter(move |t| t.service_id == service.id && t.spec_version == service.spec_version)
}

fn created(t: &Task) -> i128 {
    t.meta
        .as_ref()
        .and_then(|m| m.created_at.as_ref())
        .map_or(0, |c| c.as_unix_nanos())
}

fn state_text(t: &Task) -> String {
    let state = t.state();
    let err = t.status.as_ref().map_or("", |s| s.err.as_str());
    if matches!(state, TaskState::Failed | TaskState::Rejected) && !err.is_empty() {
        format!("{} ({err})", state.short_name())
    } else {
        state.short_name().to_string()
    }
}

/// Assesses `service` from `tasks` (tasks of other services are ignored).
/// `rollback` says the user asked for a rollback (so a rollback in
/// progress is the goal, not a failure).
pub fn assess(service: &Service, tasks: &[Task], rollback: bool) -> Progress {
    let mode = service.spec.as_ref().and_then(|s| s.mode);
    let is_job = matches!(mode, Some(Mode::ReplicatedJob(_) | Mode::GlobalJob(_)));
    let goal = if is_job {
        TaskState::Complete
    } else {
        TaskState::Running
    };
    // The newest current task of each slot (node, for global modes).
    let mut newest: BTreeMap<String, &Task> = BTreeMap::new();
    for t in current(service, tasks) {
        let key = if t.slot != 0 {
            format!("{:>20}", t.slot)
        } else {
            t.node_id.clone()
        };
        match newest.get(&key) {
            Some(old) if created(old) >= created(t) => {}
            _ => {
                newest.insert(key, t);
            }
        }
    }
    let errors: Vec<String> = current(service, tasks)
        .filter(|t| matches!(t.state(), TaskState::Failed | TaskState::Rejected))
        .filter_map(|t| {
            let s = t.status.as_ref()?;
            let why = if s.err.is_empty() { &s.message } else { &s.err };
            Some(format!("task {}: {}", t.id, why))
        })
        .collect();

    let mut slots = BTreeMap::new();
    let (done, total) = match &mode {
        Some(Mode::Replicated(r)) => {
            for slot in 1..=r.replicas {
                let text = newest
                    .get(&format!("{slot:>20}"))
                    .map_or_else(|| "new".to_string(), |t| state_text(t));
                slots.insert(format!("{slot}/{}", r.replicas), text);
            }
            let done = (1..=r.replicas)
                .filter(|s| {
                    newest
                        .get(&format!("{s:>20}"))
                        .is_some_and(|t| t.state() == TaskState::Running)
                })
                .count() as u64;
            (done, r.replicas)
        }
        Some(Mode::ReplicatedJob(j)) => {
            let total = j.total_completions.max(1);
            let done = current(service, tasks)
                .filter(|t| t.state() == TaskState::Complete)
                .count() as u64;
            for (key, t) in &newest {
                slots.insert(key.trim_start().to_string(), state_text(t));
            }
            (done.min(total), total)
        }
        Some(Mode::Global(_) | Mode::GlobalJob(_)) | None => {
            let wanted: Vec<&&Task> = newest
                .values()
                .filter(|t| t.desired_state() <= goal)
                .collect();
            for t in &wanted {
                slots.insert(t.node_id.clone(), state_text(t));
            }
            let done = wanted.iter().filter(|t| t.state() == goal).count() as u64;
            (done, wanted.len() as u64)
        }
    };
    // Old tasks still running hold the service back from "converged".
    let stale_running = tasks.iter().any(|t| {
        t.service_id == service.id
            && t.spec_version != service.spec_version
            && t.state() == TaskState::Running
            && t.desired_state() <= TaskState::Running
    });
    let update = service
        .update_status
        .as_ref()
        .map(|u| (u.state(), u.message.clone()));
    let verdict = match update {
        Some((UpdateState::Paused | UpdateState::RollbackPaused, msg)) => {
            Verdict::Stopped(format!("update paused: {msg}"))
        }
        Some((UpdateState::RollbackCompleted | UpdateState::RollbackStarted, msg)) if !rollback => {
            Verdict::Stopped(format!("update rolled back: {msg}"))
        }
        _ if total > 0 && done >= total && !stale_running => Verdict::Converged,
        _ => Verdict::Converging,
    };
    Progress {
        slots,
        done,
        total,
        errors,
        verdict,
    }
}

/// Turns successive assessments into the lines a person reads: the overall
/// count when it changes, each slot when its state changes, and the final
/// verdict once.
#[derive(Debug, Default)]
pub struct Reporter {
    last: Option<Progress>,
}

impl Reporter {
    /// A reporter that has shown nothing yet.
    pub fn new() -> Self {
        Reporter::default()
    }

    /// The lines that `next` adds to what was shown.
    pub fn lines(&mut self, next: &Progress) -> Vec<String> {
        let mut out = Vec::new();
        let prev = self.last.as_ref();
        if prev.is_none_or(|p| (p.done, p.total) != (next.done, next.total)) {
            out.push(format!(
                "overall progress: {} out of {} tasks",
                next.done, next.total
            ));
        }
        for (slot, state) in &next.slots {
            if prev.and_then(|p| p.slots.get(slot)) != Some(state) {
                out.push(format!("{slot}: {state}"));
            }
        }
        if prev.is_none_or(|p| p.verdict != next.verdict) {
            match &next.verdict {
                Verdict::Converged => out.push("verify: Service converged".into()),
                Verdict::Stopped(why) => out.push(format!("verify: {why}")),
                Verdict::Converging => {}
            }
        }
        self.last = Some(next.clone());
        out
    }
}
