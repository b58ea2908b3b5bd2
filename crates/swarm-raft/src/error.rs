//! Errors of a raft member.

use crate::types::NodeId;
use crate::wal::WalError;

/// Why a raft operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftNodeError {
    /// The log or a snapshot on disk could not be used.
    #[error(transparent)]
    Storage(#[from] WalError),
    /// The configuration is not valid.
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// The operation needs the leader.
    #[error("not the leader{}", .leader.map(|l| format!(" (leader is {l})")).unwrap_or_default())]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A membership change was refused.
    #[error("membership change refused: {0}")]
    Refused(String),
    /// The raft instance stopped or failed.
    #[error("raft: {0}")]
    Raft(String),
    /// A call to another member failed.
    #[error("remote member: {0}")]
    Remote(String),
    /// The operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
}
