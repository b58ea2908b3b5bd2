//! Merging concurrent store transactions into one log entry.
//!
//! openraft 0.9 writes each entry the leader proposes with its own
//! append, and a follower syncs each replication message it receives:
//! one entry costs a sync on each member, and a round of replication,
//! however many writers wait. So the proposer merges the transactions
//! that are waiting into one entry (one store change), with a few entries
//! in flight at once.
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

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::error::ClientWriteError;
use openraft::raft::responder::{OneshotResponder, Responder};
use parking_lot::Mutex;
use swarm_api::v1::{StoreActionBatch, Timestamp};
use swarm_store::ProposeError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;

use crate::node::Inner;
use crate::proposer::hint;
use crate::types::{Proposal, TypeConfig};

/// A transaction waiting to be proposed.
pub(crate) struct Submission {
    batch: StoreActionBatch,
    /// Its encoded size.
    size: usize,
    /// Its place in the queue.
    ticket: u64,
    reply: oneshot::Sender<Result<u64, ProposeError>>,
}

/// Counts of the proposer's work, for metrics and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProposalStats {
    /// Store transactions proposed.
    pub transactions: u64,
    /// Log entries proposed for them (fewer when merged).
    pub entries: u64,
    /// Merged entries refused, whose transactions were proposed again one
    /// by one.
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

/// Transactions waiting for a slot (an entry in flight), and the slots.
pub(crate) struct Queue {
    waiting: Mutex<VecDeque<Submission>>,
    slots: Arc<Semaphore>,
    tickets: AtomicU64,
    pub(crate) counters: Counters,
}

impl Queue {
    /// A queue with `slots` entries in flight at most.
    pub(crate) fn new(slots: usize) -> Queue {
        Queue {
            waiting: Mutex::new(VecDeque::new()),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            tickets: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// Takes, from the front, the waiting transactions that fit in one
    /// entry (at least one, if any waits).
    fn take(&self, limit_bytes: usize, max: usize) -> Vec<Submission> {
        let mut waiting = self.waiting.lock();
        let mut bytes = 0;
        let mut n = 0;
        for s in waiting.iter() {
            if n > 0 && (n >= max || bytes + s.size > limit_bytes) {
                break;
            }
            bytes += s.size;
            n += 1;
        }
        waiting.drain(..n).collect()
    }

    fn take_for(&self, inner: &Inner) -> Vec<Submission> {
        self.take(
            inner.config.max_proposal_bytes,
            inner.config.max_merged_proposals.max(1),
        )
    }
}

/// An entry in flight. Freeing it starts commits for what waits.
struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    inner: Arc<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        drain(&self.inner);
    }
}

/// Starts a commit for waiting transactions in every free slot.
fn drain(inner: &Arc<Inner>) {
    // Dropped with the runtime (a member shutting down): nothing to start.
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    while let Ok(permit) = inner.queue.slots.clone().try_acquire_owned() {
        let group = inner.queue.take_for(inner);
        if group.is_empty() {
            return;
        }
        let slot = Slot {
            permit: Some(permit),
            inner: inner.clone(),
        };
        tokio::spawn(async move {
            commit(&slot.inner, group).await;
            drop(slot);
        });
    }
}

/// Proposes `batch` (of encoded size `size`) and waits until it is
/// committed and applied here.
///
/// Transactions wait in a queue while every slot is taken, and share the
/// next entry. A transaction that finds a slot free and nobody waiting is
/// proposed by its caller's own task, with no hand-over (the common case
/// with one writer); a group is handed to a task of its own, so that
/// dropping one caller's future never abandons the others.
pub(crate) async fn propose(
    inner: &Arc<Inner>,
    batch: StoreActionBatch,
    size: usize,
) -> Result<u64, ProposeError> {
    let (reply, answer) = oneshot::channel();
    let ticket = inner.queue.tickets.fetch_add(1, Ordering::Relaxed);
    inner.queue.waiting.lock().push_back(Submission {
        batch,
        size,
        ticket,
        reply,
    });
    if let Ok(permit) = inner.queue.slots.clone().try_acquire_owned() {
        let group = inner.queue.take_for(inner);
        let slot = Slot {
            permit: Some(permit),
            inner: inner.clone(),
        };
        match group.as_slice() {
            [] => {}
            [only] if only.ticket == ticket => {
                commit(inner, group).await;
            }
            _ => {
                tokio::spawn(async move {
                    commit(&slot.inner, group).await;
                    drop(slot);
                });
            }
        }
    }
    // The entry has its own time limit once proposed; this one also covers
    // the wait for a slot.
    let timeout = inner.config.proposal_timeout * 2;
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ProposeError::Unknown(
            "the member stopped while the write was in flight".into(),
        )),
        Err(_) => Err(ProposeError::Unknown(format!(
            "not committed within {timeout:?}: the managers may have lost their quorum"
        ))),
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
        .queue
        .counters
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
            inner.queue.counters.splits.fetch_add(1, Ordering::Relaxed);
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
    inner.queue.counters.entries.fetch_add(1, Ordering::Relaxed);
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
