//! The changes one reconcile pass decides, grouped per service so that a
//! conflict with a concurrent writer loses only that service's group (it
//! is decided again on the next pass).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use swarm_api::v1::{Service, Task, TaskState};

/// The changes decided for one service (or for the orphans of a deleted one).
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// New tasks.
    pub(crate) creates: Vec<Task>,
    /// Desired-state changes (applied only if they move the task forward).
    pub(crate) desired: Vec<(String, TaskState)>,
    /// The same, by task id: a pass over 10,000 tasks looks them up once
    /// per task.
    desired_by_id: HashMap<String, TaskState>,
    /// Tasks to delete (history past the limit, removed tasks that ended).
    pub(crate) deletes: Vec<String>,
    /// The service with a new update status (or a rolled-back spec), to be
    /// written if its spec version has not moved meanwhile.
    pub(crate) service: Option<Service>,
}

impl Group {
    /// True when there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.creates.is_empty()
            && self.desired.is_empty()
            && self.deletes.is_empty()
            && self.service.is_none()
    }

    /// Asks a task to move to `state` (no-op if it is there or beyond).
    pub(crate) fn set_desired(&mut self, t: &Arc<Task>, state: TaskState) {
        if t.desired_state() < state && !self.desired_by_id.contains_key(&t.id) {
            self.desired_by_id.insert(t.id.clone(), state);
            self.desired.push((t.id.clone(), state));
        }
    }

    /// The desired state this group asks of a task, if it asks one.
    pub(crate) fn desired_for(&self, id: &str) -> Option<TaskState> {
        self.desired_by_id.get(id).copied()
    }
}

/// Everything one pass decided.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Per-service groups.
    pub(crate) groups: Vec<Group>,
    /// The earliest time something becomes due (a restart delay, an update
    /// delay or monitor period ending).
    pub(crate) wake: Option<SystemTime>,
}

impl Plan {
    /// Notes that something becomes due at `at`.
    pub(crate) fn wake_at(&mut self, at: SystemTime) {
        self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
    }

    /// Adds a non-empty group.
    pub(crate) fn push(&mut self, g: Group) {
        if !g.is_empty() {
            self.groups.push(g);
        }
    }

    /// Number of changes planned.
    pub(crate) fn changes(&self) -> usize {
        self.groups
            .iter()
            .map(|g| {
                g.creates.len()
                    + g.desired.len()
                    + g.deletes.len()
                    + usize::from(g.service.is_some())
            })
            .sum()
    }
}
