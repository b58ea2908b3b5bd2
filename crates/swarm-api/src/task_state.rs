//! The order of task states and what it implies.
//!
//! A task's observed state only ever moves forward:
//! NEW < PENDING < ASSIGNED < ACCEPTED < PREPARING < READY < STARTING <
//! RUNNING < COMPLETE < SHUTDOWN < FAILED < REJECTED < REMOVE < ORPHANED.
//! The protocol numbers are SwarmKit's and increase in that order, so states
//! compare by number.

use crate::v1::{Task, TaskState};

impl TaskState {
    /// Every state, in order.
    pub const ALL: [TaskState; 14] = [
        TaskState::New,
        TaskState::Pending,
        TaskState::Assigned,
        TaskState::Accepted,
        TaskState::Preparing,
        TaskState::Ready,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Complete,
        TaskState::Shutdown,
        TaskState::Failed,
        TaskState::Rejected,
        TaskState::Remove,
        TaskState::Orphaned,
    ];

    /// True once the task has stopped for good: any state after RUNNING.
    pub fn is_terminal(self) -> bool {
        self > TaskState::Running
    }

    /// True while the task holds resources on a node or is about to:
    /// ASSIGNED up to RUNNING.
    pub fn is_active_on_node(self) -> bool {
        self >= TaskState::Assigned && self <= TaskState::Running
    }

    /// True when a task may move from `self` to `next`: only forward, or
    /// staying where it is.
    pub fn can_move_to(self, next: TaskState) -> bool {
        next >= self
    }

    /// The state for a raw protocol value, if it is known.
    pub fn from_raw(v: i32) -> Option<TaskState> {
        TaskState::try_from(v).ok()
    }
}

impl Task {
    /// The observed state (NEW when the task has no status yet).
    pub fn state(&self) -> TaskState {
        self.status.as_ref().map_or(TaskState::New, |s| s.state())
    }

    /// The task's display name: `<service>.<slot>.<id>` for replicated
    /// tasks, `<service>.<node>.<id>` for global ones (as Docker shows it).
    pub fn display_name(&self) -> String {
        let service = self
            .service_annotations
            .as_ref()
            .map_or("", |a| a.name.as_str());
        if self.slot != 0 {
            format!("{service}.{}.{}", self.slot, self.id)
        } else {
            format!("{service}.{}.{}", self.node_id, self.id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::TaskStatus;

    #[test]
    fn all_is_strictly_increasing() {
        for pair in TaskState::ALL.windows(2) {
            assert!(pair[0] < pair[1], "{:?} !< {:?}", pair[0], pair[1]);
            assert!(i32::from(pair[0]) < i32::from(pair[1]));
        }
    }

    #[test]
    fn terminal_and_active_sets() {
        let terminal: Vec<_> = TaskState::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            [
                &TaskState::Complete,
                &TaskState::Shutdown,
                &TaskState::Failed,
                &TaskState::Rejected,
                &TaskState::Remove,
                &TaskState::Orphaned
            ]
        );
        assert!(!TaskState::Pending.is_active_on_node());
        assert!(TaskState::Assigned.is_active_on_node());
        assert!(TaskState::Running.is_active_on_node());
        assert!(!TaskState::Complete.is_active_on_node());
    }

    #[test]
    fn transitions_only_move_forward() {
        assert!(TaskState::Running.can_move_to(TaskState::Failed));
        assert!(TaskState::Running.can_move_to(TaskState::Running));
        assert!(!TaskState::Running.can_move_to(TaskState::Starting));
        assert!(!TaskState::Shutdown.can_move_to(TaskState::Complete));
    }

    #[test]
    fn task_state_defaults_to_new() {
        let mut task = Task::default();
        assert_eq!(task.state(), TaskState::New);
        task.status = Some(TaskStatus {
            state: TaskState::Running.into(),
            ..Default::default()
        });
        assert_eq!(task.state(), TaskState::Running);
    }
}
