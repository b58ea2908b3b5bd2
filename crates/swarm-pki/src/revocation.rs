//! Removed nodes: a node removed from the cluster keeps a certificate that
//! chains and has not expired, so servers ask a [`Revocation`] hook at
//! every handshake and on every call whether its node id was removed.

use std::collections::HashSet;
use std::fmt;

use parking_lot::RwLock;

/// Tells whether a node was removed from the cluster. Called on the
/// handshake path and per call: keep it fast (an in-memory lookup).
pub trait Revocation: Send + Sync + fmt::Debug {
    /// True when `node_id` must be refused.
    fn is_removed(&self, node_id: &str) -> bool;
}

/// Nothing is revoked.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRevocation;

impl Revocation for NoRevocation {
    fn is_removed(&self, _node_id: &str) -> bool {
        false
    }
}

/// An in-memory set of removed node ids.
#[derive(Debug, Default)]
pub struct RemovedNodes {
    ids: RwLock<HashSet<String>>,
}

impl RemovedNodes {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `node_id` removed.
    pub fn remove(&self, node_id: &str) {
        self.ids.write().insert(node_id.to_string());
    }
}

impl Revocation for RemovedNodes {
    fn is_removed(&self, node_id: &str) -> bool {
        self.ids.read().contains(node_id)
    }
}
