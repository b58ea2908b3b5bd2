//! One kind's objects with their indexes, as persistent (copy-on-write)
//! maps: cloning a table is O(1), so every transaction and every reader
//! gets its own consistent version without locks.

use std::ops::Bound;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use crate::key::Key;
use crate::object::{Index, Object};

/// Most indexes a kind has.
const MAX_INDEXES: usize = 8;

/// (index key, id) pairs: one B-tree per index, so adding an entry copies
/// one path, however many ids share the key.
type Postings = OrdSet<(Key, Key)>;

/// The objects of one kind.
#[derive(Clone)]
#[allow(
    unreachable_pub,
    reason = "named by the sealed Object trait, not exported"
)]
pub struct Table<T> {
    by_id: OrdMap<Key, Arc<T>>,
    /// Lowercased name -> ids (unnamed objects are not indexed).
    names: Postings,
    /// One posting map per entry of `T::INDEXES`, in that order.
    indexes: [Postings; MAX_INDEXES],
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            by_id: OrdMap::new(),
            names: OrdSet::new(),
            indexes: Default::default(),
        }
    }
}

impl<T: Object> Table<T> {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Arc<T>> {
        self.by_id.get(&Key::new(id))
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<T>> + '_ {
        self.by_id.values()
    }

    /// Objects whose id starts with `prefix`, in id order.
    pub(crate) fn with_id_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Arc<T>> + 'a {
        self.by_id
            .range::<_, [u8]>((Bound::Included(prefix.as_bytes()), Bound::Unbounded))
            .take_while(move |(k, _)| k.as_bytes().starts_with(prefix.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Ids of objects named `name` (case-insensitive).
    pub(crate) fn ids_named(&self, name: &str) -> Vec<Key> {
        postings_exact(&self.names, &Key::lowercase(name))
    }

    /// Ids of objects whose name starts with `prefix` (case-insensitive).
    pub(crate) fn ids_name_prefix(&self, prefix: &str) -> Vec<Key> {
        postings_prefix(&self.names, &Key::lowercase(prefix))
    }

    /// Position of `index` among the kind's indexes.
    pub(crate) fn index_slot(index: Index) -> Option<usize> {
        T::INDEXES.iter().position(|i| *i == index)
    }

    pub(crate) fn ids_with_key(&self, slot: usize, key: &str) -> Vec<Key> {
        postings_exact(&self.indexes[slot], &Key::new(key))
    }

    pub(crate) fn ids_with_key_prefix(&self, slot: usize, prefix: &str) -> Vec<Key> {
        postings_prefix(&self.indexes[slot], &Key::new(prefix))
    }

    /// Objects of the ids, in id order, skipping missing ones.
    pub(crate) fn objects(&self, ids: &[Key]) -> Vec<Arc<T>> {
        ids.iter()
            .filter_map(|id| self.by_id.get(id).cloned())
            .collect()
    }

    /// Another object (not `except`) already using `name`, when names are unique.
    pub(crate) fn name_taken(&self, name: &str, except: &str) -> bool {
        if !T::UNIQUE_NAMES || name.is_empty() {
            return false;
        }
        postings_exact(&self.names, &Key::lowercase(name))
            .iter()
            .any(|id| id.as_bytes() != except.as_bytes())
    }

    /// Inserts a new object (the caller checked the id is free).
    pub(crate) fn insert(&mut self, obj: Arc<T>) {
        let id = Key::new(obj.id());
        if !obj.name().is_empty() {
            add_posting(&mut self.names, Key::lowercase(obj.name()), &id);
        }
        let mut keys = Vec::new();
        for (slot, index) in T::INDEXES.iter().enumerate() {
            keys.clear();
            obj.index_keys(*index, &mut keys);
            for key in keys.drain(..) {
                add_posting(&mut self.indexes[slot], Key::new(&key), &id);
            }
        }
        self.by_id.insert(id, obj);
    }

    /// Replaces `old` by `new` (same id), moving only the index entries
    /// whose keys changed.
    pub(crate) fn replace(&mut self, old: &Arc<T>, new: Arc<T>) {
        let id = Key::new(new.id());
        let (old_name, new_name) = (Key::lowercase(old.name()), Key::lowercase(new.name()));
        if old_name != new_name {
            if !old_name.is_empty() {
                remove_posting(&mut self.names, old_name, &id);
            }
            if !new_name.is_empty() {
                add_posting(&mut self.names, new_name, &id);
            }
        }
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (slot, index) in T::INDEXES.iter().enumerate() {
            before.clear();
            after.clear();
            old.index_keys(*index, &mut before);
            new.index_keys(*index, &mut after);
            if before == after {
                continue;
            }
            for key in &before {
                if !after.contains(key) {
                    remove_posting(&mut self.indexes[slot], Key::new(key), &id);
                }
            }
            for key in after.drain(..) {
                if !before.contains(&key) {
                    add_posting(&mut self.indexes[slot], Key::new(&key), &id);
                }
            }
        }
        self.by_id.insert(id, new);
    }

    /// Removes an object and its index entries.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Arc<T>> {
        let key = Key::new(id);
        let obj = self.by_id.get(&key).cloned()?;
        if !obj.name().is_empty() {
            remove_posting(&mut self.names, Key::lowercase(obj.name()), &key);
        }
        let mut keys = Vec::new();
        for (slot, index) in T::INDEXES.iter().enumerate() {
            keys.clear();
            obj.index_keys(*index, &mut keys);
            for k in &keys {
                remove_posting(&mut self.indexes[slot], Key::new(k), &key);
            }
        }
        self.by_id.remove(&key);
        Some(obj)
    }
}

fn add_posting(set: &mut Postings, key: Key, id: &Key) {
    set.insert((key, id.clone()));
}

fn remove_posting(set: &mut Postings, key: Key, id: &Key) {
    set.remove(&(key, id.clone()));
}

/// Ids whose key starts with `prefix`, sorted and without repeats.
fn postings_prefix(set: &Postings, prefix: &Key) -> Vec<Key> {
    let from = (prefix.clone(), Key::new(""));
    let mut out: Vec<Key> = set
        .range((Bound::Included(from), Bound::Unbounded))
        .take_while(|(k, _)| k.as_bytes().starts_with(prefix.as_bytes()))
        .map(|(_, id)| id.clone())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Ids with exactly `key`, in id order.
fn postings_exact(set: &Postings, key: &Key) -> Vec<Key> {
    let from = (key.clone(), Key::new(""));
    set.range((Bound::Included(from), Bound::Unbounded))
        .take_while(|(k, _)| k.as_bytes() == key.as_bytes())
        .map(|(_, id)| id.clone())
        .collect()
}
