//! The store's errors.

use crate::object::Kind;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No object of that kind has that id (or name, or id prefix).
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind looked up.
        kind: Kind,
        /// Id, prefix or name looked up.
        id: String,
    },
    /// An id prefix or name matches more than one object.
    #[error("{kind} {prefix:?} is ambiguous: it matches {matches} objects")]
    Ambiguous {
        /// Kind looked up.
        kind: Kind,
        /// The prefix or name given.
        prefix: String,
        /// How many objects match.
        matches: usize,
    },
    /// An object with that id already exists.
    #[error("{kind} {id} already exists")]
    Exists {
        /// Kind created.
        kind: Kind,
        /// The id.
        id: String,
    },
    /// Another object of the kind has that name (names are unique per kind,
    /// compared case-insensitively).
    #[error("{kind} name {name:?} is already in use")]
    NameConflict {
        /// Kind created or renamed.
        kind: Kind,
        /// The name.
        name: String,
    },
    /// The write carried a version other than the stored one: someone else
    /// wrote the object since it was read. Read it again and retry.
    #[error(
        "update out of sequence: {kind} {id} is at version {current}, the update was based on {given}"
    )]
    SequenceConflict {
        /// Kind updated.
        kind: Kind,
        /// The id.
        id: String,
        /// Version the update was based on.
        given: u64,
        /// Version in the store.
        current: u64,
    },
    /// The object cannot be stored as given.
    #[error("invalid {kind}: {reason}")]
    InvalidObject {
        /// Kind.
        kind: Kind,
        /// What is wrong.
        reason: String,
    },
    /// The query is not supported by this kind's indexes.
    #[error("{kind} has no index for {query}")]
    UnsupportedQuery {
        /// Kind queried.
        kind: Kind,
        /// The query.
        query: String,
    },
    /// The replicated log did not accept the change.
    #[error(transparent)]
    Proposal(#[from] ProposeError),
    /// A log record or snapshot could not be decoded.
    #[error("corrupt store record: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the write certainly did not happen and may be retried as is
    /// (after re-reading, for a sequence conflict).
    pub fn is_definite_failure(&self) -> bool {
        !matches!(self, StoreError::Proposal(ProposeError::Unknown(_)))
    }
}

/// The raft leader, as far as a member knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    /// Raft id of the leader.
    pub id: u64,
    /// Address its managers API listens on.
    pub addr: String,
}

/// Why a proposal did not commit, or whether it did is unknown.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// This member is not the leader; the write was not proposed.
    #[error("not the leader{}", .0.as_ref().map(|l| format!(" (leader is {} at {})", l.id, l.addr)).unwrap_or_else(|| " (no leader known)".into()))]
    NotLeader(Option<LeaderHint>),
    /// The proposal is larger than the log accepts; it was not proposed.
    #[error("proposal of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The proposal certainly did not commit (e.g. refused before being
    /// appended, or quorum unreachable before it was sent).
    #[error("proposal failed: {0}")]
    Failed(String),
    /// The proposal may or may not have committed (e.g. a timeout after it
    /// was appended, or leadership lost while it was in flight). Do not
    /// blindly retry a non-idempotent write: read first.
    #[error("proposal outcome unknown: {0}")]
    Unknown(String),
    /// The proposal committed but its preconditions failed when applied, so
    /// it changed nothing.
    #[error("{0}")]
    Rejected(Box<StoreError>),
}

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The watcher fell too far behind (its queue was full) and was dropped;
    /// re-synchronise with `view_and_watch`.
    #[error("watcher dropped: it fell behind by more than its queue capacity")]
    Lagged,
    /// The store was dropped.
    #[error("store closed")]
    Closed,
}
