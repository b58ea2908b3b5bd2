//! How the orchestrator sees a service's tasks: grouped into slots (a
//! replica number, or a node for global services) and classified by what
//! each task means for its slot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use swarm_api::v1::{Node, NodeAvailability, NodeState, Task, TaskState};

/// A slot: where one task of a service should be running.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SlotKey {
    /// A replica number (1..N) of a replicated service or job.
    Replica(u64),
    /// The node of a global service or job.
    Node(String),
}

impl SlotKey {
    /// The slot a task belongs to.
    pub(crate) fn of(task: &Task, global: bool) -> SlotKey {
        if global {
            SlotKey::Node(task.node_id.clone())
        } else {
            SlotKey::Replica(task.slot)
        }
    }
}

/// The nodes of the cluster, as the orchestrator needs them.
pub(crate) struct Nodes {
    by_id: HashMap<String, Arc<Node>>,
}

impl Nodes {
    /// Indexes nodes by id.
    pub(crate) fn new(nodes: Vec<Arc<Node>>) -> Nodes {
        Nodes {
            by_id: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
        }
    }

    /// Every node.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.by_id.values()
    }

    /// True when the node exists and is not down.
    pub(crate) fn up(&self, id: &str) -> bool {
        self.by_id.get(id).is_some_and(|n| {
            n.status
                .as_ref()
                .is_none_or(|s| s.state() != NodeState::Down)
        })
    }

    /// True when tasks may stay on the node: up and not drained.
    pub(crate) fn usable(&self, id: &str) -> bool {
        self.up(id)
            && self.by_id.get(id).is_some_and(|n| {
                n.spec
                    .as_ref()
                    .is_none_or(|s| s.availability() != NodeAvailability::Drain)
            })
    }
}

/// What a task means for its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Wanted, not ended, and on a usable node (or not placed yet).
    Live,
    /// Wanted, but its node is down, gone or drained: to be replaced.
    Lost,
    /// Wanted and ended by itself: the restart policy decides.
    Ended,
    /// Told to shut down (to be replaced) and still running on a live node.
    Stopping,
    /// Told to go away for good and still running on a live node.
    Leaving,
    /// History: not wanted and no longer running anywhere that matters.
    Done,
}

/// Classifies a task.
pub(crate) fn role(t: &Task, nodes: &Nodes) -> Role {
    let wanted = t.desired_state() <= TaskState::Complete;
    let ended = t.state().is_terminal();
    let placed = !t.node_id.is_empty();
    if wanted {
        return if ended {
            Role::Ended
        } else if placed && !nodes.usable(&t.node_id) {
            Role::Lost
        } else {
            Role::Live
        };
    }
    if ended || !placed || !nodes.up(&t.node_id) {
        Role::Done
    } else if t.desired_state() >= TaskState::Remove {
        Role::Leaving
    } else {
        Role::Stopping
    }
}

/// When a task was created (the epoch when unknown).
pub(crate) fn created(t: &Task) -> SystemTime {
    t.meta
        .as_ref()
        .and_then(|m| m.created_at.as_ref())
        .map_or(SystemTime::UNIX_EPOCH, |c| c.to_system_time())
}

/// When the task's observed state last changed (the epoch when unknown).
pub(crate) fn status_time(t: &Task) -> SystemTime {
    t.status
        .as_ref()
        .and_then(|s| s.timestamp.as_ref())
        .map_or(SystemTime::UNIX_EPOCH, |c| c.to_system_time())
}

/// The tasks of one slot with their roles, newest first.
pub(crate) struct Slot {
    /// Which slot.
    pub(crate) key: SlotKey,
    /// Its tasks and their roles, newest first.
    pub(crate) tasks: Vec<(Arc<Task>, Role)>,
}

impl Slot {
    /// Tasks in a role, newest first.
    pub(crate) fn with(&self, role: Role) -> impl Iterator<Item = &Arc<Task>> {
        self.tasks
            .iter()
            .filter(move |(_, r)| *r == role)
            .map(|(t, _)| t)
    }

    /// True when any task is in the role.
    pub(crate) fn has(&self, role: Role) -> bool {
        self.with(role).next().is_some()
    }

    /// True while the slot holds (or is about to hold again) a task: it is
    /// one of the service's replicas.
    pub(crate) fn occupied(&self) -> bool {
        self.has(Role::Live)
            || self.has(Role::Lost)
            || self.has(Role::Ended)
            || self.has(Role::Stopping)
    }
}

/// Groups a service's tasks into slots, each slot's tasks newest first.
pub(crate) fn group(tasks: &[Arc<Task>], nodes: &Nodes, global: bool) -> BTreeMap<SlotKey, Slot> {
    let mut slots: BTreeMap<SlotKey, Slot> = BTreeMap::new();
    for t in tasks {
        let key = SlotKey::of(t, global);
        slots
            .entry(key.clone())
            .or_insert_with(|| Slot {
                key,
                tasks: Vec::new(),
            })
            .tasks
            .push((t.clone(), role(t, nodes)));
    }
    for slot in slots.values_mut() {
        slot.tasks
            .sort_by(|a, b| created(&b.0).cmp(&created(&a.0)).then(b.0.id.cmp(&a.0.id)));
    }
    slots
}
