//! The `Scheduler` trait, what a scheduling pass returns, and the
//! SwarmKit-faithful implementation, [`ClusterScheduler`].

mod cluster;
mod failures;
mod fxhash;
mod place;
mod state;

pub use cluster::{
    ClusterScheduler, DEFAULT_FAILURE_WINDOW, DEFAULT_MAX_FAILURES, SchedulerBuilder,
};

use std::time::SystemTime;

use swarm_api::v1::{GenericResource, Node, Task, TaskState, TaskStatus, Timestamp};

/// Tasks and nodes in, placement decisions out.
///
/// The manager feeds every store event (node created/updated/removed, task
/// created/updated/removed) and calls [`Scheduler::schedule`] after a batch
/// of events. Decisions are *tentative*: the scheduler books the task on
/// the node at once, and the booking becomes firm when the task comes back
/// through [`Scheduler::upsert_task`] as ASSIGNED on that node. A decision
/// that could not be committed is given back with [`Scheduler::undo`], and
/// the task is placed again in a later pass.
pub trait Scheduler {
    /// A node was created or updated.
    fn upsert_node(&mut self, node: &Node);

    /// A node was removed.
    fn remove_node(&mut self, node_id: &str);

    /// A task was created or updated. `now` dates a failure, if the task
    /// just moved to FAILED or REJECTED.
    fn upsert_task(&mut self, task: &Task, now: SystemTime);

    /// A task was removed.
    fn remove_task(&mut self, task_id: &str);

    /// Places what can be placed now: pre-assigned tasks (global services)
    /// are checked against their node, pending tasks are given one.
    fn schedule(&mut self, now: SystemTime) -> Pass;

    /// Gives back a decision that was not committed; the task is placed
    /// again in a later pass. False when the decision is no longer current.
    fn undo(&mut self, assignment: &Assignment) -> bool;

    /// A short name for reports (the policy's name).
    fn name(&self) -> &str;
}

/// One task placed on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The task.
    pub task_id: String,
    /// The node it goes to.
    pub node_id: String,
    /// Generic resources booked for the task: for each named kind the
    /// names handed out, for each discrete kind the count
    /// (`Task.assigned_generic_resources`).
    pub assigned_generic_resources: Vec<GenericResource>,
    /// True for a pre-assigned task whose node was confirmed (SwarmKit's
    /// message: "scheduler confirmed task can run on preassigned node");
    /// false for a task the scheduler placed ("scheduler assigned task to
    /// node").
    pub preassigned: bool,
}

impl Assignment {
    /// The status message SwarmKit writes with the ASSIGNED state.
    pub fn status_message(&self) -> &'static str {
        if self.preassigned {
            "scheduler confirmed task can run on preassigned node"
        } else {
            "scheduler assigned task to node"
        }
    }

    /// Writes the decision into the task as SwarmKit's scheduler does: the
    /// node, the generic resources, and a fresh status (ASSIGNED, the
    /// message, `now`). The manager commits the result only if the stored
    /// task is still PENDING.
    pub fn apply_to(&self, task: &mut Task, now: SystemTime) {
        task.node_id.clone_from(&self.node_id);
        task.assigned_generic_resources
            .clone_from(&self.assigned_generic_resources);
        task.status = Some(TaskStatus {
            timestamp: Some(Timestamp::from(now)),
            state: TaskState::Assigned as i32,
            message: self.status_message().to_string(),
            ..Default::default()
        });
    }
}

impl Unplaced {
    /// Writes the reason into the task's status error (with `now` as the
    /// status time), leaving it PENDING. Returns false, writing nothing,
    /// when the task already carries this reason: no store write needed.
    pub fn apply_to(&self, task: &mut Task, now: SystemTime) -> bool {
        let status = task.status.get_or_insert_with(TaskStatus::default);
        if status.err == self.reason {
            return false;
        }
        status.err.clone_from(&self.reason);
        status.timestamp = Some(Timestamp::from(now));
        true
    }
}

/// A task left pending, with the reason to write into its status error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaced {
    /// The task.
    pub task_id: String,
    /// SwarmKit's text, e.g. `no suitable node (insufficient resources on
    /// 2 nodes)`; for a pre-assigned task, the explanation alone (e.g.
    /// `insufficient resources on 1 node`).
    pub reason: String,
}

/// The outcome of one scheduling pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Tasks placed (tentatively, until committed).
    pub assignments: Vec<Assignment>,
    /// Tasks that stay pending. A task is reported when it is first found
    /// unplaceable and again each time it is retried after the cluster
    /// changed; the reason may be unchanged.
    pub unplaced: Vec<Unplaced>,
}

impl Pass {
    /// True when the pass decided nothing.
    pub fn is_empty(&self) -> bool {
        self.assignments.is_empty() && self.unplaced.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_write_what_swarmkit_writes() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(42);
        let mut t = Task {
            id: "t".into(),
            status: Some(TaskStatus {
                state: TaskState::Pending as i32,
                err: "no suitable node".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let u = Unplaced {
            task_id: "t".into(),
            reason: "no suitable node".into(),
        };
        assert!(!u.apply_to(&mut t, now), "same reason: no write");
        let u = Unplaced {
            task_id: "t".into(),
            reason: "no suitable node (1 node not available for new tasks)".into(),
        };
        assert!(u.apply_to(&mut t, now));
        assert_eq!(t.state(), TaskState::Pending);
        let a = Assignment {
            task_id: "t".into(),
            node_id: "n1".into(),
            assigned_generic_resources: Vec::new(),
            preassigned: false,
        };
        a.apply_to(&mut t, now);
        let s = t.status.as_ref().unwrap();
        assert_eq!((t.node_id.as_str(), t.state()), ("n1", TaskState::Assigned));
        assert_eq!(s.message, "scheduler assigned task to node");
        assert!(s.err.is_empty());
        assert_eq!(s.timestamp.as_ref().unwrap().seconds, 42);
    }
}
