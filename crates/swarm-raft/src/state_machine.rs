//! The state machine: committed entries applied to a swarm-store `Store`,
//! in log order, on every member; snapshots are the store's snapshot.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, StoredMembership};
use parking_lot::Mutex;
use prost::Message;
use swarm_api::v1::StoreSnapshot;
use swarm_store::Store;

use tokio::sync::watch;

use crate::durable::DurableEnd;
use crate::log_store::LogStore;
use crate::snapshot_file;
use crate::types::{Applied, Entry, LogId, SnapshotMeta, StorageError, TypeConfig};
use crate::wal::WalError;

/// What survives a restart of the raft instance (the store itself is kept
/// by the caller).
#[derive(Debug, Default)]
struct SmState {
    last_applied: Option<LogId>,
    membership: crate::types::StoredMembership,
    snapshot: Option<SnapshotMeta>,
    snapshots_built: u64,
}

/// The state machine of one member. Clones share state, so a raft instance
/// can be restarted over the same store.
#[derive(Clone)]
pub struct StateMachine {
    store: Store,
    dir: PathBuf,
    keep_snapshots: usize,
    state: Arc<Mutex<SmState>>,
    /// The durable end of the member's log: entries are applied once
    /// inside it (see `durable`). Unset: applied when committed.
    durable: Arc<OnceLock<watch::Receiver<DurableEnd>>>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("dir", &self.dir)
            .field("state", &*self.state.lock())
            .finish()
    }
}

fn sm_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::StateMachine,
        ErrorVerb::Write,
        std::io::Error::other(e.to_string()),
    )
}

fn snap_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::Snapshot(None),
        ErrorVerb::Write,
        std::io::Error::other(e.to_string()),
    )
}

impl StateMachine {
    /// A state machine over `store`, keeping snapshots in `dir`. The newest
    /// snapshot there, if any, is verified and loaded into the store.
    pub fn open(store: Store, dir: PathBuf, keep_snapshots: usize) -> Result<Self, WalError> {
        let mut state = SmState::default();
        if let Some(loaded) = snapshot_file::load_latest(&dir)? {
            let corrupt = |detail: String| WalError::CorruptSnapshot {
                file: loaded.path.clone(),
                detail,
            };
            let snapshot = StoreSnapshot::decode(loaded.data.as_slice())
                .map_err(|e| corrupt(format!("does not decode: {e}")))?;
            store
                .restore(snapshot)
                .map_err(|e| corrupt(format!("does not load: {e}")))?;
            state.last_applied = loaded.meta.last_log_id;
            state.membership = loaded.meta.last_membership.clone();
            state.snapshot = Some(loaded.meta);
        }
        Ok(StateMachine {
            store,
            dir,
            keep_snapshots,
            state: Arc::new(Mutex::new(state)),
            durable: Arc::new(OnceLock::new()),
        })
    }

    /// Applies entries only once `log` (this member's log) holds them
    /// durably: needed when the log reports a leader's appends before
    /// syncing them (see [`LogStore::attach`]). Only the first call counts.
    pub fn follow_log(&self, log: &LogStore) {
        let _ = self.durable.set(log.durable_end());
    }

    /// The store this state machine applies to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The last applied log position.
    pub fn last_applied(&self) -> Option<LogId> {
        self.state.lock().last_applied
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, crate::types::StoredMembership), StorageError> {
        let s = self.state.lock();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let (Some(last), Some(rx)) = (entries.last(), self.durable.get()) {
            // On the leader, an entry may be committed before its own log
            // has synced it: it is applied (and its writer answered) only
            // once it is durable here too.
            let index = last.log_id.index;
            let mut rx = rx.clone();
            let end = rx
                .wait_for(|d| d.failed || d.covers(index))
                .await
                .map(|d| d.failed)
                .unwrap_or(true);
            if end {
                return Err(StorageError::from_io_error(
                    ErrorSubject::Log(last.log_id),
                    ErrorVerb::Write,
                    std::io::Error::other("the raft log stopped before this entry was durable"),
                ));
            }
        }
        let mut out = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            let rejected = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(p) => self.store.apply(index, p.batch()).err(),
                EntryPayload::Membership(m) => {
                    self.state.lock().membership = StoredMembership::new(Some(entry.log_id), m);
                    None
                }
            };
            self.state.lock().last_applied = Some(entry.log_id);
            out.push(Applied { index, rejected });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        let s = self.state.lock();
        SnapshotBuilder {
            view: self.store.view(),
            last_applied: s.last_applied,
            membership: s.membership.clone(),
            sequence: s.snapshots_built + 1,
            sm: self.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let decoded = StoreSnapshot::decode(data.as_slice()).map_err(snap_error)?;
        // Durable first, so a restart finds the state it acknowledged.
        snapshot_file::save(&self.dir, meta, &data, self.keep_snapshots).map_err(snap_error)?;
        self.store.restore(decoded).map_err(sm_error)?;
        let mut s = self.state.lock();
        s.last_applied = meta.last_log_id;
        s.membership = meta.last_membership.clone();
        s.snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(meta) = self.state.lock().snapshot.clone() else {
            return Ok(None);
        };
        let Some(loaded) = snapshot_file::load_latest(&self.dir).map_err(snap_error)? else {
            return Ok(None);
        };
        if loaded.meta.snapshot_id != meta.snapshot_id {
            return Err(snap_error(format!(
                "snapshot {} missing on disk",
                meta.snapshot_id
            )));
        }
        Ok(Some(Snapshot {
            meta: loaded.meta,
            snapshot: Box::new(Cursor::new(loaded.data)),
        }))
    }
}

/// Builds a snapshot from an immutable version of the store, taken when
/// the build was asked for: applying goes on meanwhile.
pub struct SnapshotBuilder {
    view: Arc<swarm_store::ReadTx>,
    last_applied: Option<LogId>,
    membership: crate::types::StoredMembership,
    sequence: u64,
    sm: StateMachine,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = self.view.to_snapshot().encode_to_vec();
        let index = self.last_applied.map_or(0, |l| l.index);
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{index}-{}-{:08x}", self.sequence, rand::random::<u32>()),
        };
        let dir = self.sm.dir.clone();
        let keep = self.sm.keep_snapshots;
        let (m, d) = (meta.clone(), data.clone());
        tokio::task::spawn_blocking(move || snapshot_file::save(&dir, &m, &d, keep))
            .await
            .map_err(snap_error)?
            .map_err(snap_error)?;
        {
            let mut s = self.sm.state.lock();
            s.snapshots_built = s.snapshots_built.max(self.sequence);
            let newer = s
                .snapshot
                .as_ref()
                .and_then(|m| m.last_log_id)
                .is_some_and(|l| Some(l) > self.last_applied);
            if !newer {
                s.snapshot = Some(meta.clone());
            }
        }
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
