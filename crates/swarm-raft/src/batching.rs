//! Merging concurrent store transactions into one log entry.
//!
//! openraft 0.9 writes each entry the leader proposes with its own
//! append, and waits for that append's `fdatasync` before it takes the
//! next one: on the leader, one entry costs one fsync however many writers
//! wait. So the proposer merges the transactions that are waiting into
//! one entry (one store change), with a few entries in flight at once.
//!
//! A merged entry is applied all or nothing like any other, at one log
//! index (the version of every object it writes: still the raft index of
//! their last write) and with one timestamp (the latest of the merged
//! transactions', the moment the entry went to raft). If it is refused
//! (some transaction's precondition failed, or two merged transactions
//! conflict) nothing changed, and it is split in halves that are proposed
//! again in the same order, down to single transactions, which get their
//! own verdict. Other outcomes (committed, not leader, unknown) are the
//! same for every merged transaction.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::error::{ClientWriteError, RaftError};
use swarm_api::v1::StoreActionBatch;
use swarm_store::ProposeError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::node::Inner;
use crate::proposer::hint;
use crate::types::Proposal;

/// A transaction waiting to be proposed.
pub(crate) struct Submission {
    pub(crate) batch: StoreActionBatch,
    pub(crate) size: usize,
    pub(crate) reply: oneshot::Sender<Result<u64, ProposeError>>,
}

/// Counts of the proposer's work, for metrics and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProposalStats {
    /// Store transactions proposed.
    pub transactions: u64,
    /// Log entries proposed for them (fewer when merged).
    pub entries: u64,
    /// Merged entries refused and split to find the refused transaction.
    pub splits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    entries: AtomicU64,
    splits: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ProposalStats {
        ProposalStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            splits: self.splits.load(Ordering::Relaxed),
        }
    }
}

/// Takes submissions from `rx` and proposes them, merged, with at most
/// `RaftConfig::proposals_in_flight` entries in flight. Runs until the
/// member is dropped or every sender is gone.
pub(crate) async fn run(
    inner: std::sync::Weak<Inner>,
    mut rx: mpsc::UnboundedReceiver<Submission>,
) {
    let (in_flight, max_merged) = match inner.upgrade() {
        Some(i) => (
            i.config.proposals_in_flight.max(1),
            i.config.max_merged_proposals.max(1),
        ),
        None => return,
    };
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut carried: Option<Submission> = None;
    loop {
        let first = match carried.take() {
            Some(s) => s,
            None => match rx.recv().await {
                Some(s) => s,
                None => return,
            },
        };
        // Wait for a free slot before gathering: what arrives meanwhile
        // joins this entry.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(inner) = inner.upgrade() else { return };
        let limit = inner.config.max_proposal_bytes;
        let mut bytes = first.size;
        let mut group = vec![first];
        while group.len() < max_merged {
            match rx.try_recv() {
                Ok(s) if bytes + s.size <= limit => {
                    bytes += s.size;
                    group.push(s);
                }
                Ok(s) => {
                    carried = Some(s);
                    break;
                }
                Err(_) => break,
            }
        }
        tokio::spawn(async move {
            commit(&inner, group).await;
            drop(permit);
        });
    }
}

/// One store change holding every transaction of `group`, in order.
fn merge(group: &[Submission]) -> StoreActionBatch {
    if let [one] = group {
        return one.batch.clone();
    }
    let mut merged = StoreActionBatch {
        actions: Vec::with_capacity(group.iter().map(|s| s.batch.actions.len()).sum()),
        proposed_at: None,
    };
    for s in group {
        merged.actions.extend(s.batch.actions.iter().cloned());
        let later = match (&merged.proposed_at, &s.batch.proposed_at) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => (b.seconds, b.nanos) > (a.seconds, a.nanos),
            _ => false,
        };
        if later {
            merged.proposed_at = s.batch.proposed_at;
        }
    }
    merged
}

/// Proposes a group, splitting it when refused, and answers every caller.
async fn commit(inner: &Inner, group: Vec<Submission>) {
    inner
        .proposal_counters
        .transactions
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    let mut queue = VecDeque::from([group]);
    while let Some(mut group) = queue.pop_front() {
        let result = propose(inner, merge(&group)).await;
        match result {
            Err(ProposeError::Rejected(e)) if group.len() == 1 => {
                for s in group {
                    let _ = s.reply.send(Err(ProposeError::Rejected(e.clone())));
                }
            }
            Err(ProposeError::Rejected(_)) => {
                inner
                    .proposal_counters
                    .splits
                    .fetch_add(1, Ordering::Relaxed);
                let second = group.split_off(group.len() / 2);
                queue.push_front(second);
                queue.push_front(group);
            }
            other => {
                for s in group {
                    let _ = s.reply.send(other.clone());
                }
            }
        }
    }
}

/// Proposes one store change and waits until it is committed and applied
/// here.
async fn propose(inner: &Inner, batch: StoreActionBatch) -> Result<u64, ProposeError> {
    if inner.transferring.load(Ordering::SeqCst) {
        return Err(ProposeError::NotLeader(None));
    }
    // No raft instance: this member is stepping down or stopped.
    let raft = inner.raft().map_err(|_| ProposeError::NotLeader(None))?;
    inner
        .proposal_counters
        .entries
        .fetch_add(1, Ordering::Relaxed);
    let timeout = inner.config.proposal_timeout;
    match tokio::time::timeout(timeout, raft.client_write(Proposal(batch))).await {
        Err(_) => Err(ProposeError::Unknown(format!(
            "not committed within {timeout:?}: the managers may have lost their quorum"
        ))),
        Ok(Ok(resp)) => match resp.data.rejected {
            Some(e) => Err(ProposeError::Rejected(Box::new(e))),
            None => Ok(resp.log_id.index),
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(
            ProposeError::NotLeader(hint(f.leader_id, f.leader_node.as_ref())),
        ),
        Ok(Err(RaftError::APIError(e))) => Err(ProposeError::Failed(e.to_string())),
        Ok(Err(RaftError::Fatal(e))) => Err(ProposeError::Unknown(format!("raft stopped: {e}"))),
    }
}
