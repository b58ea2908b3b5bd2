//! Consistent reads: a [`ReadTx`] is an immutable version of the whole
//! store. Taking one costs a few reference-count increments; holding it
//! never blocks a writer, and writers never block it.

use std::sync::Arc;

use swarm_api::EnumName;
use swarm_api::v1::{Cluster, Config, Network, Node, Secret, Service, Task};

use crate::error::StoreError;
use crate::key::Key;
use crate::kinds::{label_key, slot_key, state_key};
use crate::object::{Index, Object};
use crate::query::By;
use crate::table::Table;

/// A consistent, immutable version of the store.
#[derive(Clone, Default)]
pub struct ReadTx {
    pub(crate) version: u64,
    pub(crate) nodes: Arc<Table<Node>>,
    pub(crate) services: Arc<Table<Service>>,
    pub(crate) tasks: Arc<Table<Task>>,
    pub(crate) networks: Arc<Table<Network>>,
    pub(crate) clusters: Arc<Table<Cluster>>,
    pub(crate) secrets: Arc<Table<Secret>>,
    pub(crate) configs: Arc<Table<Config>>,
}

impl ReadTx {
    /// The version of the store this view shows: the log index of the last
    /// change it contains (0 for an empty store).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The object with this exact id.
    pub fn get<T: Object>(&self, id: &str) -> Option<Arc<T>> {
        T::table(self).get(id).cloned()
    }

    /// Number of objects of a kind.
    pub fn count<T: Object>(&self) -> usize {
        T::table(self).len()
    }

    /// Every object of a kind, in id order.
    pub fn all<T: Object>(&self) -> Vec<Arc<T>> {
        T::table(self).all().cloned().collect()
    }

    /// Objects matching a query, in id order.
    pub fn find<T: Object>(&self, by: By<'_>) -> Result<Vec<Arc<T>>, StoreError> {
        let table = T::table(self);
        let ids = match by {
            By::All => return Ok(self.all()),
            By::IdPrefix(p) => return Ok(table.with_id_prefix(p).cloned().collect()),
            By::Name(n) => table.ids_named(n),
            By::NamePrefix(p) => table.ids_name_prefix(p),
            By::ServiceId(s) => self.keyed::<T>(Index::Service, s, by)?,
            By::NodeId(n) => self.keyed::<T>(Index::Node, n, by)?,
            By::Slot(s, n) => self.keyed::<T>(Index::Slot, &slot_key(s, n), by)?,
            By::DesiredState(s) => {
                self.keyed::<T>(Index::DesiredState, &state_key(s.into()), by)?
            }
            By::TaskState(s) => self.keyed::<T>(Index::TaskState, &state_key(s.into()), by)?,
            By::NetworkId(n) => self.keyed::<T>(Index::Network, n, by)?,
            By::Label(k, Some(v)) => self.keyed::<T>(Index::Label, &label_key(k, Some(v)), by)?,
            By::Label(k, None) => {
                let slot = Self::slot::<T>(Index::Label, by)?;
                table.ids_with_key_prefix(slot, &label_key(k, None))
            }
            By::Role(r) => self.keyed::<T>(Index::Role, r.short_name(), by)?,
        };
        Ok(table.objects(&ids))
    }

    /// Resolves what a user typed: an exact id, else a unique name, else a
    /// unique id prefix.
    pub fn lookup<T: Object>(&self, key: &str) -> Result<Arc<T>, StoreError> {
        let table = T::table(self);
        if let Some(obj) = table.get(key) {
            return Ok(obj.clone());
        }
        let named = table.ids_named(key);
        match named.as_slice() {
            [_] => {
                return table
                    .objects(&named)
                    .pop()
                    .ok_or_else(|| not_found::<T>(key));
            }
            [] => {}
            many => {
                return Err(StoreError::Ambiguous {
                    kind: T::KIND,
                    prefix: key.to_string(),
                    matches: many.len(),
                });
            }
        }
        if key.is_empty() {
            return Err(not_found::<T>(key));
        }
        let mut matches = table.with_id_prefix(key);
        match (matches.next(), matches.next()) {
            (Some(obj), None) => Ok(obj.clone()),
            (None, _) => Err(not_found::<T>(key)),
            (Some(_), Some(_)) => Err(StoreError::Ambiguous {
                kind: T::KIND,
                prefix: key.to_string(),
                matches: 2 + matches.count(),
            }),
        }
    }

    fn slot<T: Object>(index: Index, by: By<'_>) -> Result<usize, StoreError> {
        Table::<T>::index_slot(index).ok_or_else(|| StoreError::UnsupportedQuery {
            kind: T::KIND,
            query: by.to_string(),
        })
    }

    fn keyed<T: Object>(
        &self,
        index: Index,
        key: &str,
        by: By<'_>,
    ) -> Result<Vec<Key>, StoreError> {
        let slot = Self::slot::<T>(index, by)?;
        Ok(T::table(self).ids_with_key(slot, key))
    }
}

fn not_found<T: Object>(key: &str) -> StoreError {
    StoreError::NotFound {
        kind: T::KIND,
        id: key.to_string(),
    }
}
