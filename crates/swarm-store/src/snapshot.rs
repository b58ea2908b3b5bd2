//! Snapshots: the whole store as one protobuf message, and restoring it.

use std::sync::Arc;

use swarm_api::v1::StoreSnapshot;

use crate::error::StoreError;
use crate::object::Object;
use crate::read::ReadTx;
use crate::store::Store;
use crate::table::Table;
use crate::watch::Event;

impl ReadTx {
    /// This version as a snapshot message.
    pub fn to_snapshot(&self) -> StoreSnapshot {
        fn copy<T: Object>(r: &ReadTx) -> Vec<T> {
            T::table(r).all().map(|o| (**o).clone()).collect()
        }
        StoreSnapshot {
            version: self.version,
            nodes: copy(self),
            services: copy(self),
            tasks: copy(self),
            networks: copy(self),
            clusters: copy(self),
            secrets: copy(self),
            configs: copy(self),
        }
    }

    /// Builds a version from a snapshot, refusing duplicate ids, duplicate
    /// unique names and objects without an id.
    pub fn from_snapshot(snapshot: StoreSnapshot) -> Result<ReadTx, StoreError> {
        fn load<T: Object>(r: &mut ReadTx, objects: Vec<T>) -> Result<(), StoreError> {
            let mut table = Table::<T>::default();
            for obj in objects {
                if obj.id().is_empty() {
                    return Err(StoreError::Corrupt(format!(
                        "snapshot holds a {} without an id",
                        T::KIND
                    )));
                }
                if table.get(obj.id()).is_some() {
                    return Err(StoreError::Corrupt(format!(
                        "snapshot holds {} {} twice",
                        T::KIND,
                        obj.id()
                    )));
                }
                if table.name_taken(obj.name(), obj.id()) {
                    return Err(StoreError::Corrupt(format!(
                        "snapshot holds two {}s named {:?}",
                        T::KIND,
                        obj.name()
                    )));
                }
                table.insert(Arc::new(obj));
            }
            *T::table_mut(r) = Arc::new(table);
            Ok(())
        }
        let mut r = ReadTx {
            version: snapshot.version,
            ..ReadTx::default()
        };
        load(&mut r, snapshot.nodes)?;
        load(&mut r, snapshot.services)?;
        load(&mut r, snapshot.tasks)?;
        load(&mut r, snapshot.networks)?;
        load(&mut r, snapshot.clusters)?;
        load(&mut r, snapshot.secrets)?;
        load(&mut r, snapshot.configs)?;
        Ok(r)
    }
}

impl Store {
    /// A snapshot of the current version. Writers are not held up: the
    /// snapshot is taken from an immutable version.
    pub fn save_snapshot(&self) -> StoreSnapshot {
        self.view().to_snapshot()
    }

    /// Replaces the whole store with a snapshot (a snapshot installed from
    /// the raft leader, or a restart). Watchers receive the difference as
    /// ordinary create/update/delete events and a commit marker. A snapshot
    /// that does not hold together is refused and nothing changes.
    pub fn restore(&self, snapshot: StoreSnapshot) -> Result<(), StoreError> {
        let next = ReadTx::from_snapshot(snapshot)?;
        self.replace_state(next);
        Ok(())
    }
}

/// The events that turn `old` into `new`.
pub(crate) fn diff(old: &ReadTx, new: &ReadTx) -> Vec<Event> {
    let mut events = Vec::new();
    diff_table::<swarm_api::v1::Node>(old, new, &mut events);
    diff_table::<swarm_api::v1::Service>(old, new, &mut events);
    diff_table::<swarm_api::v1::Task>(old, new, &mut events);
    diff_table::<swarm_api::v1::Network>(old, new, &mut events);
    diff_table::<swarm_api::v1::Cluster>(old, new, &mut events);
    diff_table::<swarm_api::v1::Secret>(old, new, &mut events);
    diff_table::<swarm_api::v1::Config>(old, new, &mut events);
    events
}

fn diff_table<T: Object>(old: &ReadTx, new: &ReadTx, events: &mut Vec<Event>) {
    for obj in T::table(new).all() {
        match T::table(old).get(obj.id()) {
            None => events.push(Event::Created(T::into_any(obj.clone()))),
            Some(prev) if prev != obj => events.push(Event::Updated {
                old: T::into_any(prev.clone()),
                new: T::into_any(obj.clone()),
            }),
            Some(_) => {}
        }
    }
    for obj in T::table(old).all() {
        if T::table(new).get(obj.id()).is_none() {
            events.push(Event::Deleted(T::into_any(obj.clone())));
        }
    }
}
