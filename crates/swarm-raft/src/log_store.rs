//! openraft's log storage over the [`Wal`]: reads from memory, writes
//! through one writer thread that commits groups of appends with a single
//! `fdatasync` and only then reports them flushed (group commit).

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

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

enum Cmd {
    Append(Vec<Entry>, LogFlushed<TypeConfig>),
    Truncate(u64, oneshot::Sender<Result<(), WalError>>),
    Purge(LogId, oneshot::Sender<Result<(), WalError>>),
    Vote(Vote, oneshot::Sender<Result<(), WalError>>),
    Committed(Option<LogId>),
}

struct Shared {
    cache: RwLock<Cache>,
    tx: Mutex<mpsc::Sender<Cmd>>,
    stats: Mutex<WalStats>,
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
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            cache: RwLock::new(cache),
            tx: Mutex::new(tx),
            stats: Mutex::default(),
        });
        let writer_shared = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("raft-wal".into())
            .spawn(move || writer(wal, rx, writer_shared))
            .map_err(|e| WalError::io(dir, e))?;
        Ok((LogStore { shared }, recovered))
    }

    /// Entries written and fsyncs done so far (entries per fsync is the
    /// group-commit factor).
    pub fn stats(&self) -> WalStats {
        *self.shared.stats.lock()
    }

    /// The last log id, or the purged position when the log is empty.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.shared.cache.read().last()
    }

    #[allow(
        clippy::result_large_err,
        reason = "openraft's storage traits return its StorageError"
    )]
    fn send(&self, cmd: Cmd) -> Result<(), StorageError> {
        self.shared.tx.lock().send(cmd).map_err(|_| {
            StorageError::from_io_error(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                std::io::Error::other("log writer stopped"),
            )
        })
    }

    async fn call(
        &self,
        subject: ErrorSubject<u64>,
        make: impl FnOnce(oneshot::Sender<Result<(), WalError>>) -> Cmd,
    ) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        let result = rx
            .await
            .unwrap_or_else(|_| Err(WalError::Encode("log writer stopped".into())));
        result.map_err(|e| {
            StorageError::from_io_error(
                subject,
                ErrorVerb::Write,
                std::io::Error::other(e.to_string()),
            )
        })
    }
}

/// How often, at most, the committed position is written to its file. It
/// is only a hint (possibly behind: see [`Wal::open`]), so it is kept off
/// the append path: writing it after every commit would cost a file
/// replacement per entry and break up the groups of appends.
const COMMITTED_EVERY: Duration = Duration::from_millis(100);

/// The committed position not yet written.
struct CommittedHint {
    latest: Option<LogId>,
    dirty: bool,
    written: Instant,
}

impl CommittedHint {
    fn set(&mut self, c: Option<LogId>) {
        self.latest = c;
        self.dirty = true;
    }

    /// Time left before the hint is due, if it is dirty.
    fn due_in(&self) -> Option<Duration> {
        self.dirty
            .then(|| COMMITTED_EVERY.saturating_sub(self.written.elapsed()))
    }

    fn flush(&mut self, wal: &mut Wal, force: bool) {
        if self.dirty && (force || self.written.elapsed() >= COMMITTED_EVERY) {
            if let Err(e) = wal.save_committed(&self.latest) {
                tracing::warn!(error = %e, "saving the committed position failed");
            }
            self.dirty = false;
            self.written = Instant::now();
        }
    }
}

/// The writer thread: applies commands in order; consecutive appends are
/// written together and made durable with one sync (committed-position
/// updates in between do not break a group).
fn writer(mut wal: Wal, rx: mpsc::Receiver<Cmd>, shared: std::sync::Weak<Shared>) {
    let mut pending: Option<Cmd> = None;
    let mut hint = CommittedHint {
        latest: None,
        dirty: false,
        written: Instant::now(),
    };
    loop {
        let cmd = match pending.take() {
            Some(c) => c,
            None => {
                let got = match hint.due_in() {
                    None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                    Some(wait) => rx.recv_timeout(wait),
                };
                match got {
                    Ok(c) => c,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        hint.flush(&mut wal, true);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        hint.flush(&mut wal, true);
                        return;
                    }
                }
            }
        };
        match cmd {
            Cmd::Append(entries, cb) => {
                let mut group = vec![(entries, cb)];
                loop {
                    match rx.try_recv() {
                        Ok(Cmd::Append(e, cb)) => group.push((e, cb)),
                        Ok(Cmd::Committed(c)) => hint.set(c),
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let mut result = group.iter().try_for_each(|(e, _)| wal.append(e));
                if result.is_ok() {
                    result = wal.sync();
                }
                if let Some(s) = shared.upgrade() {
                    *s.stats.lock() = wal.stats();
                }
                for (_, cb) in group {
                    let r = match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(std::io::Error::other(e.to_string())),
                    };
                    cb.log_io_completed(r);
                }
                if let Err(e) = result {
                    tracing::error!(error = %e, "raft log write failed; the log writer stops");
                    return;
                }
                hint.flush(&mut wal, false);
            }
            Cmd::Truncate(since, reply) => {
                let _ = reply.send(wal.truncate(since));
            }
            Cmd::Purge(upto, reply) => {
                let _ = reply.send(wal.purge(upto));
            }
            Cmd::Vote(vote, reply) => {
                let _ = reply.send(wal.save_vote(&vote));
            }
            Cmd::Committed(c) => {
                hint.set(c);
                hint.flush(&mut wal, false);
            }
        }
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
        let v = *vote;
        self.call(ErrorSubject::Vote, |tx| Cmd::Vote(v, tx)).await?;
        self.shared.cache.write().vote = Some(v);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.shared.cache.read().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.shared.cache.write().committed = committed;
        self.send(Cmd::Committed(committed))
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
        self.send(Cmd::Append(entries, callback))
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
        self.call(ErrorSubject::Log(log_id), |tx| {
            Cmd::Truncate(log_id.index, tx)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.call(ErrorSubject::Log(log_id), |tx| Cmd::Purge(log_id, tx))
            .await?;
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
