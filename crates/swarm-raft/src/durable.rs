//! How far the log is durable, and what may be seen before it is.
//!
//! openraft 0.9 waits for the leader's own `fdatasync` before it sends a
//! new entry to the followers, so one write costs two fsyncs in a row
//! (the leader's, then a follower's). The leader's log store therefore
//! reports its appends done as soon as they are written, syncs them in
//! the background, and everything that would let anyone observe an entry
//! waits for the leader's sync instead:
//!
//! - the state machine applies an entry only once it is durable here (and
//!   a write's caller is answered only after it is applied);
//! - the commit position sent to followers never passes the leader's
//!   durable end, so no follower applies an entry the leader could lose;
//! - the committed position saved to disk never passes it either.
//!
//! So an entry becomes visible only when a quorum that includes the
//! leader holds it durably: the same guarantee as waiting, without the
//! second fsync on the path (openraft 0.10 does the same inside the
//! engine). Followers still report an append only after its sync: their
//! answer is what the leader counts. Membership entries are synced before
//! they are reported, so a configuration is never counted committed on a
//! leader that could lose it.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::types::LogId;

/// The durable end of a log, as published to its readers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DurableEnd {
    /// The last entry known to be on disk.
    pub(crate) last: Option<LogId>,
    /// A write or sync failed: nothing more will become durable.
    pub(crate) failed: bool,
}

impl DurableEnd {
    /// Whether the entry at `index` is durable.
    pub(crate) fn covers(&self, index: u64) -> bool {
        self.last.is_some_and(|l| l.index >= index)
    }
}

/// The writer's side: published positions, and an epoch so that a sync
/// that started before a truncation does not publish a position the
/// truncation took back.
#[derive(Debug)]
pub(crate) struct Durability {
    tx: watch::Sender<DurableEnd>,
    epoch: Mutex<u64>,
}

impl Durability {
    /// Starts at `last` (what the log holds once opened and synced).
    pub(crate) fn new(last: Option<LogId>) -> Arc<Durability> {
        let (tx, _) = watch::channel(DurableEnd {
            last,
            failed: false,
        });
        Arc::new(Durability {
            tx,
            epoch: Mutex::new(0),
        })
    }

    /// A reader that can wait for positions.
    pub(crate) fn subscribe(&self) -> watch::Receiver<DurableEnd> {
        self.tx.subscribe()
    }

    /// The current durable end.
    pub(crate) fn get(&self) -> DurableEnd {
        self.tx.borrow().clone()
    }

    /// The current epoch, to hand to [`Durability::advance`] with a sync
    /// started now.
    pub(crate) fn epoch(&self) -> u64 {
        *self.epoch.lock()
    }

    /// Everything up to `last` is on disk, by a sync started in `epoch`.
    /// Only ever moves forward, and not at all if the log was cut since.
    pub(crate) fn advance(&self, epoch: u64, last: Option<LogId>) {
        let current = self.epoch.lock();
        if *current != epoch {
            return;
        }
        self.tx.send_if_modified(|d| {
            let newer = match (d.last, last) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(a), Some(b)) => b.index > a.index,
            };
            if newer {
                d.last = last;
            }
            newer
        });
        drop(current);
    }

    /// The log was cut and synced: its end, durable, is `last` (which may
    /// be behind the previous position). Syncs started before are
    /// ignored.
    pub(crate) fn reset(&self, last: Option<LogId>) {
        let mut epoch = self.epoch.lock();
        *epoch += 1;
        self.tx.send_if_modified(|d| {
            let changed = d.last != last;
            d.last = last;
            changed
        });
        drop(epoch);
    }

    /// A write or sync failed: waiters stop waiting, with an error.
    pub(crate) fn fail(&self) {
        self.tx
            .send_if_modified(|d| !std::mem::replace(&mut d.failed, true));
    }
}

/// `committed`, held back to the durable end `durable` (for what is sent
/// to followers and written to disk).
pub(crate) fn clamp(committed: Option<LogId>, durable: &DurableEnd) -> Option<LogId> {
    match (committed, durable.last) {
        (Some(c), Some(d)) if d.index < c.index => Some(d),
        (Some(_), None) => None,
        (c, _) => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    #[test]
    fn advances_forward_only_and_not_across_a_cut() {
        let d = Durability::new(Some(id(1, 3)));
        let e = d.epoch();
        d.advance(e, Some(id(1, 5)));
        assert_eq!(d.get().last, Some(id(1, 5)));
        d.advance(e, Some(id(1, 4)));
        assert_eq!(d.get().last, Some(id(1, 5)), "never moves back");
        // A sync taken before a cut finishes after it: ignored.
        let before = d.epoch();
        d.reset(Some(id(1, 2)));
        d.advance(before, Some(id(1, 5)));
        assert_eq!(d.get().last, Some(id(1, 2)));
        d.advance(d.epoch(), Some(id(2, 3)));
        assert!(d.get().covers(3) && !d.get().covers(4));
    }

    #[test]
    fn commit_sent_or_saved_never_passes_the_durable_end() {
        let durable = DurableEnd {
            last: Some(id(2, 7)),
            failed: false,
        };
        assert_eq!(clamp(Some(id(2, 9)), &durable), Some(id(2, 7)));
        assert_eq!(clamp(Some(id(2, 6)), &durable), Some(id(2, 6)));
        assert_eq!(clamp(None, &durable), None);
        assert_eq!(clamp(Some(id(1, 1)), &DurableEnd::default()), None);
    }

    #[tokio::test]
    async fn a_failure_wakes_waiters() {
        let d = Durability::new(None);
        let mut rx = d.subscribe();
        let wait = tokio::spawn(async move {
            rx.wait_for(|e| e.failed || e.covers(1))
                .await
                .map(|e| e.failed)
        });
        d.fail();
        assert!(wait.await.unwrap().unwrap());
    }
}
