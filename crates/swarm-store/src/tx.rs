//! Read-write transactions.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use swarm_api::v1::{StoreAction, StoreActionBatch, StoreActionKind, Timestamp};

use crate::changes::{Change, ChangeLog};
use crate::error::StoreError;
use crate::key::Key;
use crate::object::{AnyObject, Kind, Object};
use crate::read::ReadTx;
use crate::replay::{Write, redo};
use crate::write;

/// A read-write transaction, given to the closure of
/// [`Store::update`](crate::Store::update).
///
/// It reads like a [`ReadTx`] (it derefs to one) and sees its own writes.
/// Its changes take effect all together when the closure returns `Ok`, or
/// not at all. Objects written carry the version they were read at: an
/// update based on a version other than the stored one fails with
/// [`StoreError::SequenceConflict`].
pub struct Tx {
    pub(crate) view: ReadTx,
    /// Every write, in order, uncoalesced (coalesced once, at commit).
    ops: Vec<Change>,
    /// Version of each object when this transaction first updated or
    /// deleted it, and the order entries were added (for rollback).
    first: HashMap<(Kind, Key), u64>,
    first_order: Vec<(Kind, Key)>,
    bytes: usize,
    now: Timestamp,
    /// The version writes get, when known (local stores); `None` when the
    /// replicated log decides it at commit.
    version: Option<u64>,
}

/// A point a transaction can be rolled back to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    ops: usize,
    first: usize,
    bytes: usize,
}

impl Deref for Tx {
    type Target = ReadTx;

    fn deref(&self) -> &ReadTx {
        &self.view
    }
}

impl Tx {
    pub(crate) fn new(view: ReadTx, now: Timestamp, version: Option<u64>) -> Self {
        Tx {
            view,
            ops: Vec::new(),
            first: HashMap::new(),
            first_order: Vec::new(),
            bytes: 0,
            now,
            version,
        }
    }

    /// Number of writes so far (before coalescing).
    pub fn changes(&self) -> usize {
        self.ops.len()
    }

    /// Rough encoded size of the writes so far.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Creates an object. Fails if the id exists or (for kinds with unique
    /// names) the name is taken. Sets `meta`; returns the object as stored.
    pub fn create<T: Object>(&mut self, obj: T) -> Result<Arc<T>, StoreError> {
        let new = write::create(&mut self.view, obj, self.version, self.now)?;
        self.record(Change::Create(T::into_any(new.clone())));
        Ok(new)
    }

    /// Updates an object, which must carry the version it was read at (or
    /// the version it had when this transaction first wrote it). Returns
    /// the object as stored.
    pub fn update<T: Object>(&mut self, obj: T) -> Result<Arc<T>, StoreError> {
        let first = self.first.get(&(T::KIND, Key::new(obj.id()))).copied();
        let (old, new) = write::update(&mut self.view, obj, self.version, self.now, first)?;
        self.remember_first(T::KIND, old.id(), old.version());
        self.record(Change::Update {
            old: T::into_any(old),
            new: T::into_any(new.clone()),
        });
        Ok(new)
    }

    /// Deletes an object by id; returns it.
    pub fn delete<T: Object>(&mut self, id: &str) -> Result<Arc<T>, StoreError> {
        let old = write::delete::<T>(&mut self.view, id)?;
        self.remember_first(T::KIND, id, old.version());
        self.record(Change::Delete(T::into_any(old.clone())));
        Ok(old)
    }

    fn remember_first(&mut self, kind: Kind, id: &str, version: u64) {
        let key = (kind, Key::new(id));
        if !self.first.contains_key(&key) {
            self.first.insert(key.clone(), version);
            self.first_order.push(key);
        }
    }

    fn record(&mut self, change: Change) {
        self.bytes += change.object().encoded_len();
        self.ops.push(change);
    }

    /// The current point, to roll back to.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            ops: self.ops.len(),
            first: self.first_order.len(),
            bytes: self.bytes,
        }
    }

    /// Undoes every write made after `mark`, newest first.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        for op in self.ops.drain(mark.ops..).rev() {
            undo(&mut self.view, op);
        }
        for key in self.first_order.drain(mark.first..) {
            self.first.remove(&key);
        }
        self.bytes = mark.bytes;
    }

    /// Applies this transaction's writes, in order and without checks, to
    /// `other`, a version with the same contents as the one the
    /// transaction started from. Used to bring the previous version up to
    /// date so the next transaction can write to it in place.
    pub(crate) fn replay_onto(&self, other: &mut ReadTx) {
        for op in &self.ops {
            let write = match op {
                Change::Create(new) => Write::Create(new),
                Change::Update { old, new } => Write::Update { old, new },
                Change::Delete(old) => Write::Delete(old),
            };
            redo(other, write);
        }
    }

    /// The coalesced changes.
    pub(crate) fn changes_log(&self) -> ChangeLog {
        ChangeLog::from_ops(&self.ops)
    }

    /// The log record of this transaction's changes.
    pub(crate) fn to_batch(&self) -> StoreActionBatch {
        let actions = self
            .changes_log()
            .iter()
            .map(|c| {
                let kind = match c {
                    Change::Create(_) => StoreActionKind::Create,
                    Change::Update { .. } => StoreActionKind::Update,
                    Change::Delete(_) => StoreActionKind::Remove,
                };
                StoreAction {
                    kind: kind.into(),
                    target: Some(c.object().to_stored()),
                }
            })
            .collect();
        StoreActionBatch {
            actions,
            proposed_at: Some(self.now),
        }
    }
}

/// Reverses one write on the view (each table operation has an exact
/// inverse).
fn undo(view: &mut ReadTx, op: Change) {
    fn typed<T: Object>(view: &mut ReadTx, op: &Change) {
        let table = Arc::make_mut(T::table_mut(view));
        match op {
            Change::Create(new) => {
                table.remove(new.id());
            }
            Change::Update { old, new } => {
                if let (Some(old), Some(new)) = (T::from_any(old), T::from_any(new)) {
                    table.replace(new, old.clone());
                }
            }
            Change::Delete(old) => {
                if let Some(old) = T::from_any(old) {
                    table.insert(old.clone());
                }
            }
        }
    }
    match op.object() {
        AnyObject::Node(_) => typed::<swarm_api::v1::Node>(view, &op),
        AnyObject::Service(_) => typed::<swarm_api::v1::Service>(view, &op),
        AnyObject::Task(_) => typed::<swarm_api::v1::Task>(view, &op),
        AnyObject::Network(_) => typed::<swarm_api::v1::Network>(view, &op),
        AnyObject::Cluster(_) => typed::<swarm_api::v1::Cluster>(view, &op),
        AnyObject::Secret(_) => typed::<swarm_api::v1::Secret>(view, &op),
        AnyObject::Config(_) => typed::<swarm_api::v1::Config>(view, &op),
    }
}
