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
//! conflict) nothing changed, and its transactions are proposed again one
//! per entry, all in one round, each getting its own verdict. (Merged
//! transactions were all waiting at once, so no order between them is
//! owed: a caller's next transaction only starts once its last one has
//! answered.) Other outcomes (committed, not leader, unknown) are the same
//! for every merged transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::error::ClientWriteError;
use openraft::raft::responder::{OneshotResponder, Responder};
use swarm_api::v1::{StoreActionBatch, Timestamp};
use swarm_store::ProposeError;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::node::Inner;
use crate::proposer::hint;
use crate::types::{Proposal, TypeConfig};

/// A transaction waiting to be proposed.
pub(crate) struct Submission {
    pub(crate) batch: StoreActionBatch,
    /// Its encoded size.
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

/// A transaction taken into a merged entry: where its changes are, and
/// who waits for it.
struct Member {
    actions: std::ops::Range<usize>,
    proposed_at: Option<Timestamp>,
    reply: oneshot::Sender<Result<u64, ProposeError>>,
}

/// The later of two proposal times.
fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) if (y.seconds, y.nanos) > (x.seconds, x.nanos) => Some(y),
        (None, y) => y,
        (x, _) => x,
    }
}

/// One store change holding every transaction of `group`, in order (their
/// actions are moved, not copied).
fn merge(group: Vec<Submission>) -> (StoreActionBatch, Vec<Member>) {
    let mut merged = StoreActionBatch {
        actions: Vec::with_capacity(group.iter().map(|s| s.batch.actions.len()).sum()),
        proposed_at: None,
    };
    let mut members = Vec::with_capacity(group.len());
    for s in group {
        let start = merged.actions.len();
        merged.actions.extend(s.batch.actions);
        merged.proposed_at = later(merged.proposed_at, s.batch.proposed_at);
        members.push(Member {
            actions: start..merged.actions.len(),
            proposed_at: s.batch.proposed_at,
            reply: s.reply,
        });
    }
    (merged, members)
}

/// The store change of some members of a refused merged entry (a copy:
/// the entry itself may still be shared by the log).
fn part(all: &StoreActionBatch, members: &[Member]) -> StoreActionBatch {
    let (Some(first), Some(last)) = (members.first(), members.last()) else {
        return StoreActionBatch::default();
    };
    let range = first.actions.start..last.actions.end;
    StoreActionBatch {
        actions: all
            .actions
            .get(range)
            .map(<[_]>::to_vec)
            .unwrap_or_default(),
        proposed_at: members.iter().fold(None, |t, m| later(t, m.proposed_at)),
    }
}

/// Proposes a group and answers every caller. A refused merged entry
/// changed nothing: its transactions are proposed again one per entry,
/// all at once (in one round), for a verdict each.
async fn commit(inner: &Inner, group: Vec<Submission>) {
    inner
        .proposal_counters
        .transactions
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    let (batch, members) = merge(group);
    let proposal = Proposal::new(batch);
    let deadline = Instant::now() + inner.config.proposal_timeout;
    let result = match submit(inner, proposal.clone()).await {
        Ok(answer) => outcome(answer, deadline).await,
        Err(e) => Err(e),
    };
    match result {
        Err(ProposeError::Rejected(_)) if members.len() > 1 => {
            inner
                .proposal_counters
                .splits
                .fetch_add(1, Ordering::Relaxed);
            let deadline = Instant::now() + inner.config.proposal_timeout;
            let mut waiting = Vec::with_capacity(members.len());
            for m in members {
                let alone = Proposal::new(part(proposal.batch(), std::slice::from_ref(&m)));
                match submit(inner, alone).await {
                    Ok(answer) => waiting.push((m, answer)),
                    Err(e) => {
                        let _ = m.reply.send(Err(e));
                    }
                }
            }
            for (m, answer) in waiting {
                let _ = m.reply.send(outcome(answer, deadline).await);
            }
        }
        other => {
            for m in members {
                let _ = m.reply.send(other.clone());
            }
        }
    }
}

/// The answer openraft gives to one proposed entry.
type Answer = <OneshotResponder<TypeConfig> as Responder<TypeConfig>>::Receiver;

/// Hands one store change to raft (it is in the log's queue when this
/// returns), counting it.
async fn submit(inner: &Inner, proposal: Proposal) -> Result<Answer, ProposeError> {
    if inner.transferring.load(Ordering::SeqCst) {
        return Err(ProposeError::NotLeader(None));
    }
    // No raft instance: this member is stepping down or stopped.
    let raft = inner.raft().map_err(|_| ProposeError::NotLeader(None))?;
    inner
        .proposal_counters
        .entries
        .fetch_add(1, Ordering::Relaxed);
    // Failing to hand it over means raft has stopped: nothing was proposed.
    raft.client_write_ff(proposal)
        .await
        .map_err(|_| ProposeError::NotLeader(None))
}

/// Waits until a proposed entry is committed and applied here.
async fn outcome(answer: Answer, deadline: Instant) -> Result<u64, ProposeError> {
    match tokio::time::timeout_at(deadline, answer).await {
        Err(_) => Err(ProposeError::Unknown(
            "not committed in time: the managers may have lost their quorum".into(),
        )),
        Ok(Ok(Ok(resp))) => match resp.data.rejected {
            Some(e) => Err(ProposeError::Rejected(Box::new(e))),
            None => Ok(resp.log_id.index),
        },
        Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => Err(ProposeError::NotLeader(hint(
            f.leader_id,
            f.leader_node.as_ref(),
        ))),
        Ok(Ok(Err(e))) => Err(ProposeError::Failed(e.to_string())),
        Ok(Err(_)) => Err(ProposeError::Unknown(
            "raft stopped while the entry was in flight".into(),
        )),
    }
}
