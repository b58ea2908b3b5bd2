//! The store: the current version, the write path and the watchers.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use swarm_api::v1::StoreActionBatch;

use crate::apply::apply_batch;
use crate::batch::Batch;
use crate::clock::{Clock, SystemClock};
use crate::error::{ProposeError, StoreError};
use crate::proposer::Proposer;
use crate::read::ReadTx;
use crate::tx::Tx;
use crate::watch::{self, Event, Subscriber, WatchFilter, Watcher};

/// Changes per transaction of a [`Store::batch`] (SwarmKit's limit).
pub const MAX_CHANGES_PER_TRANSACTION: usize = 200;
/// Encoded bytes per transaction of a [`Store::batch`], well under the raft
/// proposal limit.
pub const MAX_TRANSACTION_BYTES: usize = 1024 * 1024;

/// The transactional, watchable object store of a manager.
///
/// Cheap to clone (a handle). See the crate documentation for the model.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    current: ArcSwap<ReadTx>,
    /// Serialises commits and guards the watcher list. Held only while a
    /// local transaction runs or a committed batch is applied, never across
    /// an await.
    pub(crate) writer: Mutex<Writer>,
    proposer: ArcSwapOption<Box<dyn Proposer>>,
    clock: Box<dyn Clock>,
}

pub(crate) struct Writer {
    subscribers: Vec<Subscriber>,
    /// A version with the same contents as the current one but sharing no
    /// tree nodes with it (as far as writes have diverged them), so the
    /// next local transaction writes in place instead of copying paths.
    ///
    /// It is the previous version, brought up to date by replaying the
    /// last transaction's (or log record's) writes once no reader held it.
    /// `None` when a reader still held it, after a failed transaction or
    /// record, or after a restore: the next write then starts from a copy
    /// of the current version (copying the paths it writes).
    spare: Option<ReadTx>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("version", &self.version())
            .field("replicated", &self.inner.proposer.load().is_some())
            .finish()
    }
}

impl Store {
    /// An empty local store using the system clock.
    pub fn new() -> Self {
        Store::with_clock(SystemClock)
    }

    /// An empty local store with the given clock.
    pub fn with_clock(clock: impl Clock) -> Self {
        Store {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(ReadTx::default()),
                writer: Mutex::new(Writer {
                    subscribers: Vec::new(),
                    spare: None,
                }),
                proposer: ArcSwapOption::empty(),
                clock: Box::new(clock),
            }),
        }
    }

    /// Installs (or removes, with `None`) the replicated log that
    /// transactions are proposed to.
    pub fn set_proposer(&self, proposer: Option<Box<dyn Proposer>>) {
        self.inner.proposer.store(proposer.map(Arc::new));
    }

    /// The current version: the log index of the last change applied.
    pub fn version(&self) -> u64 {
        self.inner.current.load().version
    }

    /// A consistent view of the whole store, to hold as long as needed.
    pub fn view(&self) -> Arc<ReadTx> {
        self.inner.current.load_full()
    }

    /// Runs `f` on a consistent view.
    pub fn view_with<R>(&self, f: impl FnOnce(&ReadTx) -> R) -> R {
        f(&self.inner.current.load())
    }

    /// Runs a read-write transaction.
    ///
    /// `f` runs on a consistent view plus its own writes; if it returns
    /// `Ok`, its changes are committed all together: at once on a local
    /// store, or, with a proposer, when the replicated log has committed
    /// and applied them (this future resolves then). If `f` fails nothing
    /// changes. With a proposer, another transaction may commit first; the
    /// version checks then fail with [`StoreError::SequenceConflict`] and
    /// nothing changes.
    pub async fn update<R, E>(&self, f: impl FnOnce(&mut Tx) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        let Some(proposer) = self.inner.proposer.load_full() else {
            return self.update_local(f);
        };
        let (value, batch) = {
            let mut tx = Tx::new((*self.view()).clone(), self.inner.clock.now(), None);
            let value = f(&mut tx)?;
            (value, (!tx.is_empty()).then(|| tx.to_batch()))
        };
        if let Some(batch) = batch {
            proposer
                .propose(batch)
                .await
                .map_err(|e| E::from(unwrap_rejected(e)))?;
        }
        Ok(value)
    }

    /// A transaction on a store without a proposer, under the writer lock.
    fn update_local<R, E>(&self, f: impl FnOnce(&mut Tx) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        let mut writer = self.inner.writer.lock();
        let base = self.base(&mut writer);
        let version = base.version + 1;
        // On failure the transaction (and the spare it wrote to) is dropped.
        let mut tx = Tx::new(base, self.inner.clock.now(), Some(version));
        let value = f(&mut tx)?;
        self.commit_local(&mut writer, tx);
        Ok(value)
    }

    /// The version a local transaction starts from: the spare when there
    /// is one (written in place), else a copy of the current version.
    /// Call with the writer lock held.
    pub(crate) fn base(&self, writer: &mut Writer) -> ReadTx {
        let current = self.inner.current.load();
        match writer.spare.take() {
            Some(spare) if spare.version == current.version => spare,
            _ => (**current).clone(),
        }
    }

    /// Makes a local transaction's state current and tells the watchers.
    pub(crate) fn commit_local(&self, writer: &mut Writer, mut tx: Tx) {
        let log = tx.changes_log();
        if log.is_empty() {
            // Same contents as the current version: keep it as the spare.
            writer.spare = Some(std::mem::take(&mut tx.view));
            return;
        }
        let version = self.inner.current.load().version + 1;
        let mut view = std::mem::take(&mut tx.view);
        view.version = version;
        let mut events: Vec<Event> = log.iter().map(|c| c.to_event()).collect();
        events.push(Event::Commit { version });
        let previous = self.inner.current.swap(Arc::new(view));
        watch::publish(&mut writer.subscribers, &events);
        // `swap` has turned every reader's guard on the previous version
        // into a counted reference: if none is left, no reader can see it
        // any more and it may be written in place.
        writer.spare = Arc::try_unwrap(previous).ok().map(|mut previous| {
            tx.replay_onto(&mut previous);
            previous.version = version;
            previous
        });
    }

    /// Runs a bulk change split into bounded transactions (at most
    /// [`MAX_CHANGES_PER_TRANSACTION`] changes or [`MAX_TRANSACTION_BYTES`]
    /// each), like SwarmKit's `Batch`. Each [`Batch::update`] is atomic;
    /// the batch as a whole is not: on an error, the transactions already
    /// committed stay. Returns the number of changes committed.
    pub async fn batch<E>(
        &self,
        f: impl FnOnce(&mut Batch<'_>) -> Result<(), E>,
    ) -> Result<usize, E>
    where
        E: From<StoreError>,
    {
        let proposer = self.inner.proposer.load_full();
        // The batch (which may hold the writer lock) lives only in this
        // block: nothing of it is held across the await below, so the
        // future stays `Send`.
        let (outcome, committed, queued) = {
            let mut batch = Batch::new(self, proposer.is_some());
            let outcome = f(&mut batch);
            let (committed, queued) = batch.finish(outcome.is_ok());
            (outcome, committed, queued)
        };
        let committed = match proposer {
            None => committed,
            Some(p) => crate::batch::propose_in_order(p.as_ref().as_ref(), queued).await?,
        };
        outcome.map(|()| committed)
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn current(&self) -> Arc<ReadTx> {
        self.inner.current.load_full()
    }

    /// Applies a committed log record at log index `index`, on every member
    /// in log order (the replicated log's state machine calls this).
    ///
    /// All or nothing: if a precondition fails (a stale version, a taken
    /// name, a missing object) nothing changes and the error is returned,
    /// for the proposer to hand to the waiting writer. Records at or below
    /// the current version were applied already and are ignored.
    pub fn apply(&self, index: u64, batch: &StoreActionBatch) -> Result<(), StoreError> {
        let mut writer = self.inner.writer.lock();
        // No reference to the current version is kept here: it is to become
        // the spare once replaced.
        if index <= self.version() {
            return Ok(());
        }
        // On failure the base (perhaps the spare) is partly written: dropped.
        let mut next = self.base(&mut writer);
        match apply_batch(&mut next, index, batch) {
            Ok(mut events) => {
                events.push(Event::Commit { version: index });
                let previous = self.inner.current.swap(Arc::new(next));
                watch::publish(&mut writer.subscribers, &events);
                writer.spare = Arc::try_unwrap(previous).ok().map(|mut previous| {
                    crate::replay::redo_events(&mut previous, &events);
                    previous.version = index;
                    previous
                });
                Ok(())
            }
            Err(e) => {
                let mut unchanged = (**self.inner.current.load()).clone();
                unchanged.version = index;
                self.inner.current.store(Arc::new(unchanged));
                Err(e)
            }
        }
    }

    /// Watches changes from now on.
    pub fn watch(&self, filter: WatchFilter) -> Watcher {
        self.view_and_watch(filter, |_| ()).1
    }

    /// A consistent view and a watcher that receives every change after
    /// it: no change is missed and none is seen twice.
    pub fn view_and_watch<R>(
        &self,
        filter: WatchFilter,
        f: impl FnOnce(&ReadTx) -> R,
    ) -> (R, Watcher) {
        let (subscriber, watcher) = watch::channel(filter);
        let view = {
            let mut writer = self.inner.writer.lock();
            writer.subscribers.push(subscriber);
            self.inner.current.load_full()
        };
        (f(&view), watcher)
    }

    /// Replaces the whole state (a snapshot from the log), telling watchers
    /// the difference as ordinary events.
    pub(crate) fn replace_state(&self, next: ReadTx) {
        let mut writer = self.inner.writer.lock();
        writer.spare = None;
        let current = self.inner.current.load_full();
        let mut events = crate::snapshot::diff(&current, &next);
        events.push(Event::Commit {
            version: next.version,
        });
        self.inner.current.store(Arc::new(next));
        watch::publish(&mut writer.subscribers, &events);
    }
}

/// A rejection carries the store's own error: give that to the caller.
pub(crate) fn unwrap_rejected(e: ProposeError) -> StoreError {
    match e {
        ProposeError::Rejected(inner) => *inner,
        other => StoreError::Proposal(other),
    }
}
