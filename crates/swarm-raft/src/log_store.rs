//! openraft's log storage over the [`Wal`]: reads from memory; appends
//! written on the caller's task and made durable (`fdatasync`) by a
//! background thread (`raft-wal-sync`), one sync covering every append
//! written before it starts.
//!
//! A follower's append is reported flushed once that sync is done: its
//! answer to the leader counts towards the quorum. A follower's append
//! carries every entry of a replication message, so they share one sync.
//! The leader reports its appends as soon as they are written, so that
//! its sync and the followers' run at once; an entry is only applied,
//! answered or announced as committed once the leader's sync is done too
//! (see `durable`). Membership entries are synced before they are
//! reported, inside `tokio::task::block_in_place` on a multi-threaded
//! runtime so that the runtime's other tasks move to another thread
//! meanwhile; so are truncations, purges and votes. The rare append that
//! starts a segment (whose directory entry must be synced) is synced on
//! the calling task before it is reported.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::watch;

use crate::durable::{self, Durability, DurableEnd};
use crate::faults::Faults;
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};
use crate::wal::{Recovered, Wal, WalError, WalExtent, WalOptions, WalStats};

/// What the log holds in memory: every entry since the last purge.
#[derive(Default)]
struct Cache {
    entries: VecDeque<Entry>,
    first_index: u64,
    purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

impl Cache {
    fn last(&self) -> Option<LogId> {
        self.entries.back().map(|e| e.log_id).or(self.purged)
    }
}

/// How long after a commit the committed position is written to its file
/// (at most once in that time). It is only a hint (possibly behind: see
/// [`Wal::open`]), so it is kept off the append path: writing it after
/// every commit would cost a file replacement per entry.
const COMMITTED_EVERY: Duration = Duration::from_millis(100);

/// The files, and what is not written yet.
struct Writer {
    wal: Wal,
    /// The committed position, if newer than the one in its file.
    committed: Option<Option<LogId>>,
    /// A task will write it.
    committed_scheduled: bool,
    /// Set once a write failed: the log is not used any more.
    failed: Option<String>,
    /// The last entry written (durable or not).
    written: Option<LogId>,
}

impl Writer {
    /// Syncs everything written and publishes it as durable.
    fn sync_all(&mut self, d: &Durability) -> Result<(), WalError> {
        let epoch = d.epoch();
        self.wal.sync()?;
        d.advance(epoch, self.written);
        Ok(())
    }

    fn save_committed(&mut self) {
        if self.failed.is_some() {
            return;
        }
        if let Some(c) = self.committed.take()
            && let Err(e) = self.wal.save_committed(&c)
        {
            tracing::warn!(error = %e, "saving the committed position failed");
        }
    }
}

struct Shared {
    cache: RwLock<Cache>,
    writer: Mutex<Writer>,
    durability: Arc<Durability>,
    syncer: Arc<SyncSignal>,
    /// This member's id: its appends as leader are synced in the
    /// background. Unset: every append is synced before it is reported.
    self_id: OnceLock<NodeId>,
    faults: OnceLock<Faults>,
    /// Follower appends written and waiting for the sync thread, with the
    /// index each must reach.
    waiting: Mutex<Vec<(u64, LogFlushed<TypeConfig>)>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.syncer.stop();
        self.writer.get_mut().save_committed();
    }
}

/// Wakes the background sync thread.
#[derive(Default)]
struct SyncSignal {
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl SyncSignal {
    /// Asks for a sync of everything written so far.
    fn want(&self) {
        self.state.lock().0 = true;
        self.cv.notify_one();
    }

    fn stop(&self) {
        self.state.lock().1 = true;
        self.cv.notify_one();
    }

    /// Waits for a request; false once stopped.
    fn wait(&self) -> bool {
        let mut s = self.state.lock();
        while !s.0 && !s.1 {
            self.cv.wait(&mut s);
        }
        s.0 = false;
        !s.1
    }

    /// Sleeps for `d` unless stopped meanwhile; false once stopped.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = std::time::Instant::now() + d;
        let mut s = self.state.lock();
        while !s.1 {
            if self.cv.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        !s.1
    }
}

/// The background sync thread: syncs what the leader wrote, as often as
/// asked, one `fdatasync` covering every append written before it starts.
/// It holds the log only while it syncs, so that a stopped member's log
/// is closed even when a fault slows its disk.
fn sync_loop(shared: Weak<Shared>, signal: Arc<SyncSignal>) {
    while signal.wait() {
        let delay = match shared.upgrade() {
            Some(s) => s.sync_delay(),
            None => return,
        };
        if let Some(d) = delay
            && !signal.sleep(d)
        {
            return;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.sync_written();
    }
}

impl Shared {
    /// Syncs the current segment without holding the writer (appends go on
    /// meanwhile), then publishes what was written when it started.
    fn sync_written(&self) {
        let (target, last, epoch) = {
            let w = self.writer.lock();
            if w.failed.is_some() {
                return;
            }
            let durable = self.durability.get().last;
            if w.written.map(|l| l.index) <= durable.map(|l| l.index) {
                // Nothing written since the last sync began.
                drop(w);
                self.report_durable();
                return;
            }
            match w.wal.sync_target() {
                Ok(Some(target)) => (target, w.written, self.durability.epoch()),
                Ok(None) => return,
                Err(e) => {
                    drop(w);
                    self.stop_log(&e.to_string());
                    return;
                }
            }
        };
        match target.file.sync_data() {
            Ok(()) => {
                let mut w = self.writer.lock();
                if w.failed.is_some() {
                    // Stopped meanwhile (a power cut drill): nothing more
                    // counts as durable.
                    return;
                }
                w.wal.synced_through(&target);
                drop(w);
                self.durability.advance(epoch, last);
                self.report_durable();
            }
            Err(e) => self.stop_log(&format!("{}: {e}", target.path.display())),
        }
    }

    /// How long a fault makes this member's next background sync wait.
    fn sync_delay(&self) -> Option<Duration> {
        self.faults
            .get()
            .zip(self.self_id.get())
            .and_then(|(f, id)| f.sync_delay(*id))
    }

    /// Tells openraft about the waiting appends that are durable now.
    fn report_durable(&self) {
        let durable = self.durability.get();
        let done: Vec<LogFlushed<TypeConfig>> = {
            let mut q = self.waiting.lock();
            let (done, rest): (Vec<_>, Vec<_>) = q.drain(..).partition(|(i, _)| durable.covers(*i));
            *q = rest;
            done.into_iter().map(|(_, cb)| cb).collect()
        };
        for cb in done {
            cb.log_io_completed(Ok(()));
        }
    }

    /// A write or sync failed: the log stops, and waiters are told.
    fn stop_log(&self, why: &str) {
        tracing::error!(error = %why, "raft log write failed; the log stops");
        self.writer.lock().failed = Some(why.to_string());
        self.fail_waiters(why);
    }

    /// Wakes everyone waiting on the stopped log with an error.
    fn fail_waiters(&self, why: &str) {
        self.durability.fail();
        let waiting: Vec<_> = self.waiting.lock().drain(..).collect();
        for (_, cb) in waiting {
            cb.log_io_completed(Err(std::io::Error::other(why.to_string())));
        }
    }

    /// Whether this member's current vote makes it the leader.
    fn leads(&self) -> bool {
        let Some(me) = self.self_id.get() else {
            return false;
        };
        self.cache
            .read()
            .vote
            .is_some_and(|v| v.committed && v.leader_id.node_id == *me)
    }
}

/// The durable raft log of one member. Cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.shared.cache.read();
        f.debug_struct("LogStore")
            .field("first", &c.first_index)
            .field("last", &c.last())
            .finish()
    }
}

/// Runs blocking file work from async code: on a multi-threaded runtime
/// the worker's other tasks are handed to another thread meanwhile.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A write's outcome as openraft's flush callback takes it.
fn io_result(result: &Result<(), StorageError>) -> std::io::Result<()> {
    result
        .as_ref()
        .map(|_| ())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The vote a member starts with: the one it saved, but never committed.
///
/// openraft restores a member whose saved vote is committed and names
/// itself as leader of that same term at once. That is only safe if its
/// log still holds everything it sent as leader, and ours may not: the
/// leader syncs its appends in the background, so a power loss can take
/// entries that followers already have. Leading again in the same term
/// would then give new entries the log ids of lost ones, and a follower
/// holding a lost one would take it for the leader's (Raft's log matching
/// broken). Uncommitted, the vote still binds the member to that term's
/// candidate, but it must win an election, in a new term, to lead again,
/// as in etcd's raft, where every member restarts as a follower.
fn restarted_vote(mut vote: Vote) -> Vote {
    vote.committed = false;
    vote
}

fn storage_error(subject: ErrorSubject<u64>, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        subject,
        ErrorVerb::Write,
        std::io::Error::other(e.to_string()),
    )
}

impl LogStore {
    /// Opens the log in `dir` (see [`Wal::open`] for what is verified).
    pub fn open(dir: &Path, options: WalOptions) -> Result<(LogStore, Recovered), WalError> {
        let (mut wal, mut recovered) = Wal::open(dir, options)?;
        // What an earlier run wrote but may not have synced (a crash of the
        // process keeps it in the page cache) is made durable now.
        wal.sync()?;
        let entries: VecDeque<Entry> = std::mem::take(&mut recovered.entries).into();
        let first_index = entries
            .front()
            .map_or(recovered.purged.map_or(0, |p| p.index + 1), |e| {
                e.log_id.index
            });
        let cache = Cache {
            entries,
            first_index,
            purged: recovered.purged,
            vote: recovered.vote.map(restarted_vote),
            committed: recovered.committed,
        };
        let last = cache.last();
        let syncer = Arc::new(SyncSignal::default());
        let shared = Arc::new(Shared {
            cache: RwLock::new(cache),
            writer: Mutex::new(Writer {
                wal,
                committed: None,
                committed_scheduled: false,
                failed: None,
                written: last,
            }),
            durability: Durability::new(last),
            syncer: Arc::clone(&syncer),
            self_id: OnceLock::new(),
            faults: OnceLock::new(),
            waiting: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("raft-wal-sync".into())
            .spawn(move || sync_loop(weak, syncer))
            .map_err(|e| WalError::io(dir, e))?;
        Ok((LogStore { shared }, recovered))
    }

    /// Tells the log whose it is: from then on, appends made while this
    /// member leads are reported before their sync, which runs in the
    /// background (see the module documentation). `faults` may slow that
    /// sync down, for tests. Only the first call counts.
    pub fn attach(&self, id: NodeId, faults: Faults) {
        let _ = self.shared.self_id.set(id);
        let _ = self.shared.faults.set(faults);
    }

    /// Follows the durable end of the log.
    pub(crate) fn durable_end(&self) -> watch::Receiver<DurableEnd> {
        self.shared.durability.subscribe()
    }

    /// Entries written and fsyncs done so far (their ratio is the number
    /// of entries each sync made durable).
    pub fn stats(&self) -> WalStats {
        self.shared.writer.lock().wal.stats()
    }

    /// How much of the segment being appended to is on disk (see
    /// [`WalExtent`]).
    pub fn extent(&self) -> Option<WalExtent> {
        self.shared.writer.lock().wal.extent()
    }

    /// Stops the log as a power loss would, for crash drills: from now on
    /// no write or sync completes (each fails, and nothing more is
    /// reported durable). Returns what the disk held at that moment (see
    /// [`crate::testing::lose_unsynced`]).
    pub fn cut_power(&self) -> Option<WalExtent> {
        const WHY: &str = "power cut (a crash drill)";
        let extent = {
            let mut w = self.shared.writer.lock();
            w.failed.get_or_insert_with(|| WHY.to_string());
            w.wal.extent()
        };
        tracing::warn!("raft log stopped: {WHY}");
        self.shared.fail_waiters(WHY);
        extent
    }

    /// Syncs what was written, and writes what is only remembered (the
    /// committed position) now. For a clean stop: after a crash the
    /// committed position may be found behind, which is allowed.
    pub fn flush(&self) {
        let _ = self.write_with(ErrorSubject::Logs, |w, d| {
            w.sync_all(d)?;
            Ok(())
        });
        blocking(|| self.shared.writer.lock().save_committed());
    }

    /// The last log id, or the purged position when the log is empty.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.shared.cache.read().last()
    }

    /// Runs `f` on the files (blocking), unless an earlier write failed.
    /// A failed write stops the log: what reached the disk is unknown.
    #[allow(
        clippy::result_large_err,
        reason = "openraft's storage traits return its StorageError"
    )]
    fn write(
        &self,
        subject: ErrorSubject<u64>,
        f: impl FnOnce(&mut Wal) -> Result<(), WalError>,
    ) -> Result<(), StorageError> {
        self.write_with(subject, |w, _| f(&mut w.wal))
    }

    /// [`LogStore::write`] with the whole writer state and the durable
    /// end at hand.
    #[allow(
        clippy::result_large_err,
        reason = "openraft's storage traits return its StorageError"
    )]
    fn write_with(
        &self,
        subject: ErrorSubject<u64>,
        f: impl FnOnce(&mut Writer, &Durability) -> Result<(), WalError>,
    ) -> Result<(), StorageError> {
        blocking(|| self.write_now(subject, f))
    }

    /// [`LogStore::write_with`] on the calling thread.
    #[allow(
        clippy::result_large_err,
        reason = "openraft's storage traits return its StorageError"
    )]
    fn write_now(
        &self,
        subject: ErrorSubject<u64>,
        f: impl FnOnce(&mut Writer, &Durability) -> Result<(), WalError>,
    ) -> Result<(), StorageError> {
        let mut w = self.shared.writer.lock();
        if let Some(e) = &w.failed {
            return Err(storage_error(subject, format!("log stopped after: {e}")));
        }
        let result = f(&mut w, &self.shared.durability);
        drop(w);
        if let Err(e) = &result {
            self.shared.stop_log(&e.to_string());
        }
        result.map_err(|e| storage_error(subject, e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let c = self.shared.cache.read();
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => c.first_index,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        let from = usize::try_from(start.saturating_sub(c.first_index)).unwrap_or(usize::MAX);
        let to = usize::try_from(end.saturating_sub(c.first_index))
            .unwrap_or(usize::MAX)
            .min(c.entries.len());
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(c.entries.range(from..to).cloned().collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let c = self.shared.cache.read();
        Ok(LogState {
            last_purged_log_id: c.purged,
            last_log_id: c.last(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write(ErrorSubject::Vote, |wal| wal.save_vote(vote))?;
        self.shared.cache.write().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.shared.cache.read().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Never past what this log holds durably: after a crash the log
        // may end there.
        let committed = durable::clamp(committed, &self.shared.durability.get());
        self.shared.cache.write().committed = committed;
        // Written a little later, by a task, with whatever is newest then.
        let mut w = self.shared.writer.lock();
        w.committed = Some(committed);
        if w.committed_scheduled {
            return Ok(());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            w.save_committed();
            return Ok(());
        };
        w.committed_scheduled = true;
        let shared = Arc::downgrade(&self.shared);
        runtime.spawn(async move {
            tokio::time::sleep(COMMITTED_EVERY).await;
            if let Some(shared) = shared.upgrade() {
                blocking(|| {
                    let mut w = shared.writer.lock();
                    w.committed_scheduled = false;
                    w.save_committed();
                });
            }
        });
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.shared.cache.read().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        {
            let mut c = self.shared.cache.write();
            if let Some(first) = entries.first() {
                if c.entries.is_empty() && c.purged.is_none() {
                    // The very first entry of an empty log.
                    c.first_index = first.log_id.index;
                }
                let want = c.first_index + c.entries.len() as u64;
                if first.log_id.index != want {
                    return Err(StorageError::from_io_error(
                        ErrorSubject::Log(first.log_id),
                        ErrorVerb::Write,
                        std::io::Error::other(format!(
                            "append at {} where {want} was expected",
                            first.log_id.index
                        )),
                    ));
                }
            }
            c.entries.extend(entries.iter().cloned());
        }
        let subject = ErrorSubject::Logs;
        let last = entries.last().map(|e| e.log_id);
        let membership = entries
            .iter()
            .any(|e| matches!(e.payload, EntryPayload::Membership(_)));
        if membership {
            // Synced before it is reported, on the calling thread.
            let result = self.write_with(subject, |w, d| {
                w.wal.append(&entries)?;
                w.written = last;
                w.sync_all(d)?;
                Ok(())
            });
            callback.log_io_completed(io_result(&result));
            return result;
        }
        // Written here, synced by the sync thread. The leader reports its
        // append at once (nothing shows it before the sync: see
        // `durable`); a follower's is reported once synced, by that thread.
        let early = self.shared.leads();
        let mut callback = Some(callback);
        let result = self.write_now(subject, |w, d| {
            w.wal.append(&entries)?;
            w.written = last;
            if w.wal.dir_dirty() {
                // A new segment's directory entry: synced here (rare).
                w.sync_all(d)?;
            } else {
                if !early && let (Some(l), Some(cb)) = (last, callback.take()) {
                    // Queued under the writer's lock: a sync that starts
                    // after this covers it.
                    self.shared.waiting.lock().push((l.index, cb));
                }
                self.shared.syncer.want();
            }
            Ok(())
        });
        if let Some(cb) = callback {
            cb.log_io_completed(io_result(&result));
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut c = self.shared.cache.write();
            let keep =
                usize::try_from(log_id.index.saturating_sub(c.first_index)).unwrap_or(usize::MAX);
            if keep < c.entries.len() {
                c.entries.truncate(keep);
            }
        }
        let remaining = self.shared.cache.read().last();
        // The cut is synced, and with it what comes before it (a former
        // leader's appends may not have been yet).
        self.write_with(ErrorSubject::Log(log_id), |w, d| {
            w.wal.truncate(log_id.index)?;
            w.wal.sync()?;
            w.written = remaining;
            d.reset(remaining);
            Ok(())
        })
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(ErrorSubject::Log(log_id), |wal| wal.purge(log_id))?;
        let mut c = self.shared.cache.write();
        let drop_n =
            usize::try_from((log_id.index + 1).saturating_sub(c.first_index)).unwrap_or(usize::MAX);
        let drop_n = drop_n.min(c.entries.len());
        c.entries.drain(..drop_n);
        c.first_index = c.first_index.max(log_id.index + 1);
        c.purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use openraft::storage::RaftLogStorage;

    use super::*;
    use crate::testing::{ScratchDir, block_on};

    #[test]
    fn a_committed_vote_comes_back_uncommitted_after_a_restart() {
        let dir = ScratchDir::new("restarted-vote");
        let vote = Vote::new_committed(7, 3);
        block_on(async {
            let (mut log, _) = LogStore::open(dir.path(), WalOptions::default()).unwrap();
            log.save_vote(&vote).await.unwrap();
            // The running member reads what it saved.
            assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        });
        block_on(async {
            let (mut log, _) = LogStore::open(dir.path(), WalOptions::default()).unwrap();
            let back = log.read_vote().await.unwrap().unwrap();
            assert_eq!(back.leader_id, vote.leader_id, "same term and candidate");
            assert!(!back.committed, "it must win an election to lead again");
        });
    }
}
