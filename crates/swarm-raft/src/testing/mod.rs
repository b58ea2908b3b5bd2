//! A conformance suite for durable raft log storage.
//!
//! Any [`RaftLogStorage`] that keeps its data in a directory can prove
//! itself with [`run_log_suite`]: every check appends, truncates, purges
//! and votes, then reopens the log from the same directory and verifies
//! that exactly what was acknowledged is there. [`OpenraftSuiteBuilder`]
//! additionally runs openraft's own storage suite against our log and
//! state machine.
//!
//! [`linearizable`] checks histories of concurrent register operations
//! (recorded with [`history::History`]) for linearizability.

pub mod history;
pub mod linearizable;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::testing::StoreBuilder;
use openraft::{CommittedLeaderId, EntryPayload, RaftLogId};
use swarm_api::v1::StoreActionBatch;
use swarm_store::Store;

use crate::log_store::LogStore;
use crate::state_machine::StateMachine;
use crate::types::{Entry, LogId, Proposal, StorageError, TypeConfig, Vote};
use crate::wal::WalOptions;

/// Opens a log stored in a directory (again and again, to check
/// durability).
pub trait LogFactory: Send + Sync {
    /// The log type.
    type Log: RaftLogStorage<TypeConfig>;
    /// Opens the log kept in `dir`.
    fn open(&self, dir: &Path) -> Self::Log;
}

/// Our WAL-backed log, with small segments so rotation is exercised.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalLogFactory;

impl LogFactory for WalLogFactory {
    type Log = LogStore;
    fn open(&self, dir: &Path) -> LogStore {
        match LogStore::open(
            dir,
            WalOptions {
                max_segment_bytes: 512,
                ..WalOptions::default()
            },
        ) {
            Ok((log, _)) => log,
            Err(e) => panic!("opening {}: {e}", dir.display()),
        }
    }
}

/// A unique scratch directory, removed on drop.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A new empty directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "swarm-raft-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        if let Err(e) = std::fs::create_dir_all(&p) {
            panic!("creating {}: {e}", p.display());
        }
        ScratchDir(p)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Simulates a power loss on a stopped member's log: the bytes written
/// past the last finished sync (see [`crate::RaftNode::wal_extent`]) are
/// overwritten with zeros, as a disk that never got them would read.
/// Returns how many bytes were lost.
pub fn lose_unsynced(extent: &crate::WalExtent) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let lost = extent.written.saturating_sub(extent.synced);
    if lost > 0 {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&extent.segment)?;
        let zeros = vec![0u8; usize::try_from(lost).unwrap_or(usize::MAX)];
        f.write_all_at(&zeros, extent.synced)?;
        f.sync_data()?;
    }
    Ok(lost)
}

/// A log id in term `term` at `index`.
pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// A normal entry carrying an empty store change.
pub fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Proposal::new(StoreActionBatch::default())),
    }
}

fn entries(term: u64, range: std::ops::Range<u64>) -> Vec<Entry> {
    range.map(|i| entry(term, i)).collect()
}

async fn append<L: RaftLogStorage<TypeConfig>>(log: &mut L, es: Vec<Entry>) {
    log.blocking_append(es)
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
}

async fn indexes<L: RaftLogStorage<TypeConfig>>(log: &mut L) -> Vec<u64> {
    let mut r = log.get_log_reader().await;
    r.try_get_log_entries(..)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"))
        .iter()
        .map(|e| e.get_log_id().index)
        .collect()
}

async fn state<L: RaftLogStorage<TypeConfig>>(log: &mut L) -> (Option<LogId>, Option<LogId>) {
    let s = log
        .get_log_state()
        .await
        .unwrap_or_else(|e| panic!("log state: {e}"));
    (s.last_purged_log_id, s.last_log_id)
}

/// Runs every check of the suite; panics on the first failure.
pub async fn run_log_suite<F: LogFactory>(factory: &F) {
    empty_log(factory).await;
    append_read_reopen(factory).await;
    vote_survives_reopen(factory).await;
    truncate_survives_reopen(factory).await;
    purge_survives_reopen(factory).await;
    purge_past_the_end(factory).await;
    out_of_order_append_is_refused(factory).await;
}

async fn empty_log<F: LogFactory>(f: &F) {
    let dir = ScratchDir::new("suite-empty");
    let mut log = f.open(dir.path());
    assert_eq!(state(&mut log).await, (None, None));
    assert!(indexes(&mut log).await.is_empty());
    assert_eq!(
        log.read_vote().await.unwrap_or_else(|e| panic!("{e}")),
        None
    );
}

async fn append_read_reopen<F: LogFactory>(f: &F) {
    let dir = ScratchDir::new("suite-append");
    {
        let mut log = f.open(dir.path());
        append(&mut log, entries(1, 0..10)).await;
        append(&mut log, entries(2, 10..40)).await;
        let mut r = log.get_log_reader().await;
        let got = r
            .try_get_log_entries(5..8)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, entries(1, 5..8));
        let got = r
            .try_get_log_entries(38..100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, entries(2, 38..40));
    }
    let mut log = f.open(dir.path());
    assert_eq!(indexes(&mut log).await, (0..40).collect::<Vec<_>>());
    assert_eq!(state(&mut log).await, (None, Some(log_id(2, 39))));
    append(&mut log, entries(2, 40..41)).await;
}

async fn vote_survives_reopen<F: LogFactory>(f: &F) {
    let dir = ScratchDir::new("suite-vote");
    let vote = Vote::new(7, 3);
    {
        let mut log = f.open(dir.path());
        log.save_vote(&vote).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let mut log = f.open(dir.path());
    assert_eq!(
        log.read_vote().await.unwrap_or_else(|e| panic!("{e}")),
        Some(vote)
    );
}

async fn truncate_survives_reopen<F: LogFactory>(f: &F) {
    let dir = ScratchDir::new("suite-truncate");
    {
        let mut log = f.open(dir.path());
        append(&mut log, entries(1, 0..30)).await;
        log.truncate(log_id(1, 12))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&mut log).await, (0..12).collect::<Vec<_>>());
        // Entries of a new term replace the truncated ones.
        append(&mut log, entries(3, 12..15)).await;
    }
    let mut log = f.open(dir.path());
    assert_eq!(indexes(&mut log).await, (0..15).collect::<Vec<_>>());
    assert_eq!(state(&mut log).await.1, Some(log_id(3, 14)));
}

async fn purge_survives_reopen<F: LogFactory>(f: &F) {
    let dir = ScratchDir::new("suite-purge");
    {
        let mut log = f.open(dir.path());
        append(&mut log, entries(1, 0..50)).await;
        log.purge(log_id(1, 20))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&mut log).await, (21..50).collect::<Vec<_>>());
    }
    let mut log = f.open(dir.path());
    assert_eq!(
        state(&mut log).await,
        (Some(log_id(1, 20)), Some(log_id(1, 49)))
    );
    assert_eq!(indexes(&mut log).await, (21..50).collect::<Vec<_>>());
}

async fn purge_past_the_end<F: LogFactory>(f: &F) {
    let dir = ScratchDir::new("suite-purge-all");
    {
        let mut log = f.open(dir.path());
        append(&mut log, entries(1, 0..5)).await;
        // A snapshot newer than the whole log was installed.
        log.purge(log_id(2, 100))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            state(&mut log).await,
            (Some(log_id(2, 100)), Some(log_id(2, 100)))
        );
        append(&mut log, entries(2, 101..103)).await;
    }
    let mut log = f.open(dir.path());
    assert_eq!(indexes(&mut log).await, vec![101, 102]);
}

async fn out_of_order_append_is_refused<F: LogFactory>(f: &F) {
    let dir = ScratchDir::new("suite-gap");
    let mut log = f.open(dir.path());
    append(&mut log, entries(1, 0..3)).await;
    assert!(
        log.blocking_append(entries(1, 5..6)).await.is_err(),
        "a gap must be refused"
    );
}

/// Builds our log and state machine in a fresh directory for openraft's
/// storage suite (`openraft::testing::Suite`).
#[derive(Debug, Default)]
pub struct OpenraftSuiteBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Arc<ScratchDir>> for OpenraftSuiteBuilder {
    async fn build(&self) -> Result<(Arc<ScratchDir>, LogStore, StateMachine), StorageError> {
        let dir = Arc::new(ScratchDir::new("openraft-suite"));
        let io = |e: crate::wal::WalError| {
            StorageError::from_io_error(
                openraft::ErrorSubject::Store,
                openraft::ErrorVerb::Write,
                std::io::Error::other(e.to_string()),
            )
        };
        let (log, _) =
            LogStore::open(&dir.path().join("wal"), WalOptions::default()).map_err(io)?;
        let sm = StateMachine::open(Store::new(), dir.path().join("snapshots"), 2).map_err(io)?;
        Ok((dir, log, sm))
    }
}

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<T>(f: impl Future<Output = T>) -> T {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => panic!("runtime: {e}"),
    }
}
