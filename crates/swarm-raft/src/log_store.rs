//! openraft's log storage over the [`Wal`]: reads from memory, writes
//! on the caller's task, each append made durable (`fdatasync`) before it
//! is reported flushed.
//!
//! openraft 0.9 waits for each append's flush before it issues the next
//! one (on the leader and on followers alike), so there is never a second
//! append to share a sync with: a writer thread would only add two thread
//! hand-overs to every append. Group commit happens a level up instead:
//! a follower's append carries every entry of a replication message, and
//! the leader's proposer merges the transactions that wait into one entry
//! (see `batching`). The write and sync run inside
//! `tokio::task::block_in_place` on a multi-threaded runtime, so the
//! runtime's other tasks move to another thread meanwhile.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend};
use parking_lot::{Mutex, RwLock};

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::wal::{Recovered, Wal, WalError, WalOptions, WalStats};

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
}

impl Writer {
    fn save_committed(&mut self) {
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
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.writer.get_mut().save_committed();
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
        let (wal, mut recovered) = Wal::open(dir, options)?;
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
            vote: recovered.vote,
            committed: recovered.committed,
        };
        let shared = Arc::new(Shared {
            cache: RwLock::new(cache),
            writer: Mutex::new(Writer {
                wal,
                committed: None,
                committed_scheduled: false,
                failed: None,
            }),
        });
        Ok((LogStore { shared }, recovered))
    }

    /// Entries written and fsyncs done so far (their ratio is the number
    /// of entries each sync made durable).
    pub fn stats(&self) -> WalStats {
        self.shared.writer.lock().wal.stats()
    }

    /// Writes what is only remembered (the committed position) now. For a
    /// clean stop: after a crash it may be found behind, which is allowed.
    pub fn flush(&self) {
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
        blocking(|| {
            let mut w = self.shared.writer.lock();
            if let Some(e) = &w.failed {
                return Err(storage_error(subject, format!("log stopped after: {e}")));
            }
            let result = f(&mut w.wal);
            if let Err(e) = &result {
                tracing::error!(error = %e, "raft log write failed; the log stops");
                w.failed = Some(e.to_string());
            }
            result.map_err(|e| storage_error(subject, e))
        })
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
        let result = self.write(subject, |wal| {
            wal.append(&entries)?;
            wal.sync()
        });
        // Durable (or failed) now: tell openraft.
        callback.log_io_completed(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
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
        self.write(ErrorSubject::Log(log_id), |wal| wal.truncate(log_id.index))
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
