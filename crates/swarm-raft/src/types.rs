//! The openraft type configuration: what a log entry carries, how members
//! are addressed, what applying an entry answers.

use std::io::Cursor;
use std::sync::Arc;

use prost::Message;

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

/// What one log entry asks of the state machine: one store change (one
/// transaction, or several merged).
///
/// It holds the change both decoded and encoded, shared: cloning one
/// (the log cache, each replication stream) costs a reference count, and
/// the change is encoded once, on the member that proposes it, for the
/// log file and every follower.
#[derive(Clone)]
pub struct Proposal {
    batch: Arc<StoreActionBatch>,
    encoded: Arc<[u8]>,
}

impl Proposal {
    /// A proposal of `batch`.
    pub fn new(batch: StoreActionBatch) -> Self {
        let encoded = batch.encode_to_vec().into();
        Proposal {
            batch: Arc::new(batch),
            encoded,
        }
    }

    /// A proposal from its encoding (protobuf `StoreActionBatch`).
    pub fn decode(encoded: &[u8]) -> Result<Self, prost::DecodeError> {
        let batch = StoreActionBatch::decode(encoded)?;
        Ok(Proposal {
            batch: Arc::new(batch),
            encoded: encoded.into(),
        })
    }

    /// The store change.
    pub fn batch(&self) -> &StoreActionBatch {
        &self.batch
    }

    /// Its encoding.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposal")
            .field("actions", &self.batch.actions.len())
            .field("bytes", &self.encoded.len())
            .finish()
    }
}

impl PartialEq for Proposal {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

/// Serialised as its encoding (openraft wants serde; our own codec is
/// what goes to disk and over the wire).
impl Serialize for Proposal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encoded)
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        Proposal::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

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
