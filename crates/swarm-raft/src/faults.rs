//! Fault injection for the raft transport: cut links between members (a
//! partition), or delay every message. Both ends consult it, so a cut is
//! seen in both directions. Also a slow disk: delay a member's background
//! log syncs. Tests and chaos drills use it; a production node simply
//! never sets anything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::types::NodeId;

#[derive(Debug, Default)]
struct State {
    cut: HashSet<(NodeId, NodeId)>,
    isolated: HashSet<NodeId>,
    delay: Option<Duration>,
    slow_sync: HashMap<NodeId, Duration>,
}

/// Shared fault settings (clones share them).
#[derive(Debug, Default, Clone)]
pub struct Faults {
    state: Arc<RwLock<State>>,
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Faults::default()
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&self, node: NodeId) {
        self.state.write().isolated.insert(node);
    }

    /// Undoes [`Faults::isolate`].
    pub fn rejoin(&self, node: NodeId) {
        self.state.write().isolated.remove(&node);
    }

    /// Cuts the link between two members, both ways.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut s = self.state.write();
        s.cut.insert((a, b));
        s.cut.insert((b, a));
    }

    /// Restores every link.
    pub fn heal(&self) {
        let mut s = self.state.write();
        s.cut.clear();
        s.isolated.clear();
    }

    /// Delays every message by `d` (or stops delaying, with `None`).
    pub fn delay(&self, d: Option<Duration>) {
        self.state.write().delay = d;
    }

    /// Delays each background sync of `node`'s log by `d` (or stops
    /// delaying, with `None`): a slow disk on the leader.
    pub fn slow_sync(&self, node: NodeId, d: Option<Duration>) {
        let mut s = self.state.write();
        match d {
            Some(d) => s.slow_sync.insert(node, d),
            None => s.slow_sync.remove(&node),
        };
    }

    /// The delay to add to a background sync of `node`'s log, if any.
    pub fn sync_delay(&self, node: NodeId) -> Option<Duration> {
        self.state.read().slow_sync.get(&node).copied()
    }

    /// Whether a message from `from` to `to` gets through.
    pub fn allows(&self, from: NodeId, to: NodeId) -> bool {
        let s = self.state.read();
        !s.isolated.contains(&from) && !s.isolated.contains(&to) && !s.cut.contains(&(from, to))
    }

    /// The delay to apply to a message, if any.
    pub fn current_delay(&self) -> Option<Duration> {
        self.state.read().delay
    }
}
