//! Bulk changes split into bounded transactions.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::MutexGuard;
use swarm_api::v1::{StoreActionBatch, StoreActionKind};

use crate::apply::written;
use crate::error::StoreError;
use crate::object::{Kind, stored_kind_id, stored_meta_mut};
use crate::proposer::Proposer;
use crate::read::ReadTx;
use crate::store::{
    MAX_CHANGES_PER_TRANSACTION, MAX_TRANSACTION_BYTES, Store, Writer, unwrap_rejected,
};
use crate::tx::Tx;

/// A bulk change in progress; see [`Store::batch`].
pub struct Batch<'s> {
    store: &'s Store,
    replicated: bool,
    open: Option<Open<'s>>,
    committed: usize,
    /// Replicated stores: closed transactions waiting to be proposed, and
    /// the view they lead to.
    queued: Vec<StoreActionBatch>,
    carried: Option<ReadTx>,
}

struct Open<'s> {
    /// Local stores hold the writer lock while a transaction is open.
    guard: Option<MutexGuard<'s, Writer>>,
    tx: Tx,
}

impl<'s> Batch<'s> {
    pub(crate) fn new(store: &'s Store, replicated: bool) -> Self {
        Batch {
            store,
            replicated,
            open: None,
            committed: 0,
            queued: Vec::new(),
            carried: None,
        }
    }

    /// Runs one atomic piece of the bulk change. Its changes join the open
    /// transaction, which commits once it holds enough changes.
    pub fn update<R>(
        &mut self,
        f: impl FnOnce(&mut Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                let begun = self.begin(self.store.clock().now());
                self.open.insert(begun)
            }
        };
        let mark = open.tx.mark();
        match f(&mut open.tx) {
            Ok(value) => {
                if open.tx.changes() >= MAX_CHANGES_PER_TRANSACTION
                    || open.tx.bytes() >= MAX_TRANSACTION_BYTES
                {
                    self.flush();
                }
                Ok(value)
            }
            Err(e) => {
                open.tx.rollback(mark);
                Err(e)
            }
        }
    }

    fn begin(&mut self, now: swarm_api::v1::Timestamp) -> Open<'s> {
        if self.replicated {
            let view = self
                .carried
                .take()
                .unwrap_or_else(|| (*self.store.current()).clone());
            Open {
                guard: None,
                tx: Tx::new(view, now, None),
            }
        } else {
            let mut guard = self.store.inner().writer.lock();
            let view = self.store.base(&mut guard);
            let version = view.version + 1;
            Open {
                guard: Some(guard),
                tx: Tx::new(view, now, Some(version)),
            }
        }
    }

    fn flush(&mut self) {
        let Some(open) = self.open.take() else { return };
        let changes = open.tx.changes_log().len();
        if self.replicated {
            if changes > 0 {
                self.queued.push(open.tx.to_batch());
            }
            self.carried = Some(open.tx.view);
        } else if let Some(mut guard) = open.guard {
            self.store.commit_local(&mut guard, open.tx);
            self.committed += changes;
        }
    }

    /// Commits (local) or queues (replicated) the open transaction when the
    /// closure succeeded, drops it when it failed.
    pub(crate) fn finish(mut self, succeeded: bool) -> (usize, Vec<StoreActionBatch>) {
        if succeeded {
            self.flush();
        } else {
            self.open = None;
        }
        (self.committed, std::mem::take(&mut self.queued))
    }
}

/// Proposes the transactions of a batch one after the other. An object
/// written by an earlier transaction got its version from the log only when
/// that transaction committed: later updates of it are based on that.
pub(crate) async fn propose_in_order(
    proposer: &dyn Proposer,
    queued: Vec<StoreActionBatch>,
) -> Result<usize, StoreError> {
    let mut versions: HashMap<(Kind, Arc<str>), u64> = HashMap::new();
    let mut committed = 0;
    for mut batch in queued {
        for action in &mut batch.actions {
            if action.kind() != StoreActionKind::Update {
                continue;
            }
            let Some(object) = action.target.as_mut().and_then(|t| t.object.as_mut()) else {
                continue;
            };
            let (kind, id) = stored_kind_id(object);
            if let Some(v) = versions.get(&(kind, Arc::from(id))) {
                stored_meta_mut(object).version = *v;
            }
        }
        let touched = written(&batch);
        let changes = batch.actions.len();
        let index = proposer.propose(batch).await.map_err(unwrap_rejected)?;
        for key in touched {
            versions.insert(key, index);
        }
        committed += changes;
    }
    Ok(committed)
}
