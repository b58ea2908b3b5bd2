//! Replicated, durable manager state: [openraft] over a checksummed
//! write-ahead log, with a [`swarm_store::Store`] as the state machine.
//!
//! - [`LogStore`] is openraft's log storage on our [`Wal`]: preallocated
//!   segment files of records (length, CRC-32C, index, payload),
//!   `fdatasync` before a follower's append is reported flushed (every
//!   entry of an append, e.g. a whole replication message, in one sync);
//!   the leader's appends are synced in the background, concurrently
//!   with replication, and nothing is applied, answered or sent out as
//!   committed before that sync (group commit: appends made during a
//!   sync share the next); the vote
//!   persisted before it is answered, truncate, purge and segment
//!   rotation, a torn tail cut on open and a damaged committed record
//!   refused with the file and offset named.
//! - [`StateMachine`] applies committed store changes to the store, in log
//!   order, on every member; object versions are log indexes. Snapshots
//!   are the store's snapshot, built from an immutable version (writes go
//!   on), written atomically with a checksum, sent in bounded chunks.
//! - [`RaftNode`] runs a member: [`RaftNode::proposer`] is the store's
//!   [`Proposer`](swarm_store::Proposer) (a write returns once committed and
//!   applied; transactions that wait at the same time share one log entry,
//!   so the leader commits many writes per sync; a follower answers
//!   `NotLeader` with the leader's id and address; proposals over 1.5 MB
//!   are refused), [`RaftNode::read_barrier`]
//!   gives linearizable reads, and membership changes follow SwarmKit:
//!   [`RaftNode::bootstrap`], [`RaftNode::join`] (learner first, promoted
//!   when caught up), [`RaftNode::remove`] (refused when the remaining
//!   managers would lose a reachable quorum, never the last one),
//!   [`RaftNode::transfer_leadership`], and
//!   [`RaftNode::force_new_cluster`]. A leader that loses its quorum steps
//!   down (CheckQuorum).
//! - The transport is the gRPC `Raft` service of `swarm-api`: mount
//!   [`RaftNode::raft_service`] on your own tonic server (your listener,
//!   your TLS) and inject a [`Connector`] for outgoing channels;
//!   [`Faults`] cuts or delays links for tests.
//!
//! # Example: a one-member cluster
//!
//! ```
//! use std::sync::Arc;
//! use swarm_api::v1::Node;
//! use swarm_raft::{RaftConfig, RaftNodeBuilder, TcpConnector};
//! use swarm_store::Store;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("swarm-raft-doc-{}", std::process::id()));
//! let store = Store::new();
//! let node = RaftNodeBuilder::new(1, "127.0.0.1:0", &dir, store.clone(), Arc::new(TcpConnector::default()))
//!     .config(RaftConfig::fast())
//!     .start()
//!     .await?;
//! node.bootstrap().await?;
//! node.wait_for_leader(std::time::Duration::from_secs(10)).await?;
//! store.set_proposer(Some(Box::new(node.proposer())));
//!
//! store.update(|tx| tx.create(Node { id: "n1".into(), ..Default::default() }).map(drop)).await?;
//! let version = store.view().get::<Node>("n1").unwrap().meta.as_ref().unwrap().version;
//! assert!(version > 0, "the version is the raft log index");
//! node.shutdown().await;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod batching;
pub mod codec;
mod config;
mod durable;
mod error;
mod faults;
mod log_store;
mod membership;
mod network;
mod node;
mod proposer;
mod service;
mod snapshot_file;
mod state_machine;
pub mod testing;
mod types;
pub mod wal;

pub use batching::ProposalStats;
pub use config::RaftConfig;
pub use error::RaftNodeError;
pub use faults::Faults;
pub use log_store::LogStore;
pub use network::{Connector, TcpConnector, TransportError};
pub use node::{RaftNode, RaftNodeBuilder, Status};
pub use openraft::ServerState;
pub use proposer::RaftProposer;
pub use service::{MembershipService, RaftService};
pub use state_machine::{SnapshotBuilder, StateMachine};
pub use types::{
    Applied, Entry, LogId, Member, NodeId, Proposal, Raft, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig, Vote,
};
pub use wal::{Wal, WalError, WalExtent, WalOptions, WalStats};
