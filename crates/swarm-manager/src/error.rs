//! Errors of the manager, and how store errors reach gRPC clients.

use swarm_store::{ProposeError, StoreError};
use tonic::Status;

/// Why the manager could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The configuration is incomplete or inconsistent.
    #[error("invalid manager configuration: {0}")]
    Config(String),
    /// Reading or writing the state directory failed.
    #[error("state directory {path}: {source}")]
    State {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Raft could not start or failed.
    #[error(transparent)]
    Raft(#[from] swarm_raft::RaftNodeError),
    /// The store refused a write made while starting.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Certificates or the CA could not be set up.
    #[error("pki: {0}")]
    Pki(String),
    /// Joining an existing cluster failed.
    #[error("joining the cluster: {0}")]
    Join(String),
    /// The join token is a worker token: the node was admitted as a
    /// worker (its certificate is stored in the state directory) and must
    /// run as an agent, not as a manager.
    #[error("the token is a worker token: a manager needs the manager join token")]
    WorkerToken,
    /// Started as a promoted node, but the node's certificate still names
    /// a worker: the promotion has not reached the certificate yet.
    #[error("node {0} holds a worker certificate: it has not been promoted (yet)")]
    NotPromoted(String),
    /// A listener could not be opened.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The manager did not become ready in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Maps a store error to the gRPC status a client should see.
pub fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound { .. } => Status::not_found(e.to_string()),
        StoreError::Ambiguous { .. } => Status::invalid_argument(e.to_string()),
        StoreError::Exists { .. } | StoreError::NameConflict { .. } => {
            Status::already_exists(e.to_string())
        }
        StoreError::SequenceConflict { .. } => Status::aborted(e.to_string()),
        StoreError::InvalidObject { .. } | StoreError::UnsupportedQuery { .. } => {
            Status::invalid_argument(e.to_string())
        }
        StoreError::Proposal(p) => propose_status(p),
        StoreError::Corrupt(_) => Status::internal(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

fn propose_status(p: ProposeError) -> Status {
    match p {
        ProposeError::NotLeader(_) => Status::unavailable(p.to_string()),
        ProposeError::TooLarge { .. } => Status::invalid_argument(p.to_string()),
        ProposeError::Failed(_) => Status::unavailable(p.to_string()),
        ProposeError::Unknown(_) => Status::unknown(format!(
            "{p}; the change may or may not have been made: check before retrying"
        )),
        ProposeError::Rejected(inner) => store_status(*inner),
        other => Status::internal(other.to_string()),
    }
}

/// The leader's address, when a write failed because this manager is not
/// the leader.
pub fn not_leader(e: &StoreError) -> Option<Option<String>> {
    match e {
        StoreError::Proposal(ProposeError::NotLeader(hint)) => Some(
            hint.as_ref()
                .map(|h| h.addr.clone())
                .filter(|a| !a.is_empty()),
        ),
        _ => None,
    }
}
