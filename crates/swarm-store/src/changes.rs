//! A transaction's changes, coalesced per object: create+update is a
//! create, update+update one update from the first old version,
//! create+delete nothing at all.

use std::collections::HashMap;

use crate::key::Key;
use crate::object::{AnyObject, Kind};
use crate::watch::Event;

/// One change to one object.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Create(AnyObject),
    Update { old: AnyObject, new: AnyObject },
    Delete(AnyObject),
}

impl Change {
    pub(crate) fn to_event(&self) -> Event {
        match self {
            Change::Create(o) => Event::Created(o.clone()),
            Change::Update { old, new } => Event::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Delete(o) => Event::Deleted(o.clone()),
        }
    }

    pub(crate) fn object(&self) -> &AnyObject {
        match self {
            Change::Create(o) | Change::Delete(o) | Change::Update { new: o, .. } => o,
        }
    }
}

/// The ordered, coalesced changes of a transaction.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChangeLog {
    entries: Vec<Option<Change>>,
    last: HashMap<(Kind, Key), usize>,
    live: usize,
}

impl ChangeLog {
    /// Number of changes.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Coalesces a transaction's writes.
    pub(crate) fn from_ops(ops: &[Change]) -> Self {
        let mut log = ChangeLog::default();
        if let [only] = ops {
            // One write needs no coalescing (the common case).
            log.entries.push(Some(only.clone()));
            log.live = 1;
            return log;
        }
        for op in ops {
            match op.clone() {
                Change::Create(new) => log.created(new),
                Change::Update { old, new } => log.updated(old, new),
                Change::Delete(old) => log.deleted(old),
            }
        }
        log
    }

    fn key(o: &AnyObject) -> (Kind, Key) {
        (o.kind(), Key::new(o.id()))
    }

    fn last_mut(&mut self, key: &(Kind, Key)) -> Option<&mut Option<Change>> {
        let i = *self.last.get(key)?;
        self.entries.get_mut(i)
    }

    fn push(&mut self, key: (Kind, Key), change: Change) {
        self.entries.push(Some(change));
        self.last.insert(key, self.entries.len() - 1);
        self.live += 1;
    }

    pub(crate) fn created(&mut self, new: AnyObject) {
        self.push(Self::key(&new), Change::Create(new));
    }

    pub(crate) fn updated(&mut self, old: AnyObject, new: AnyObject) {
        let key = Self::key(&new);
        match self.last_mut(&key) {
            Some(Some(Change::Create(o))) => *o = new,
            Some(Some(Change::Update { new: n, .. })) => *n = new,
            _ => self.push(key, Change::Update { old, new }),
        }
    }

    pub(crate) fn deleted(&mut self, old: AnyObject) {
        let key = Self::key(&old);
        match self.last_mut(&key) {
            Some(slot @ Some(Change::Create(_))) => {
                *slot = None;
                self.live -= 1;
                self.last.remove(&key);
            }
            Some(slot @ Some(Change::Update { .. })) => {
                if let Some(Change::Update { old: first, .. }) = slot.take() {
                    *slot = Some(Change::Delete(first));
                }
            }
            _ => self.push(key, Change::Delete(old)),
        }
    }

    /// The changes, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Change> + '_ {
        self.entries.iter().flatten()
    }
}
