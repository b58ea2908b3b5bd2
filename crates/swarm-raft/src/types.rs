//! The openraft type configuration: what a log entry carries, how members
//! are addressed, what applying an entry answers.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use swarm_api::v1::StoreActionBatch;
use swarm_store::StoreError;

/// A member's raft id. Ids are random 64-bit numbers (as in SwarmKit), so
/// two managers never pick the same one by accident.
pub type NodeId = u64;

/// How a member is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Address of the member's raft gRPC service (`host:port`).
    pub addr: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)
    }
}

/// What one log entry asks of the state machine: one store transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal(pub StoreActionBatch);

/// What applying an entry answered. Only the member that proposed it reads
/// it, so the store's error (which has no wire form) is kept locally.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    /// Log index the entry was applied at.
    pub index: u64,
    /// The store refused the change (a precondition failed); nothing changed.
    #[serde(skip)]
    pub rejected: Option<StoreError>,
}

openraft::declare_raft_types!(
    /// The raft types of a swarm-rs manager.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log position (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// Membership as stored in the log.
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
/// The openraft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// Storage errors as openraft wants them.
pub type StorageError = openraft::StorageError<NodeId>;
