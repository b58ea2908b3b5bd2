//! The three writes, with their checks, shared by local transactions and by
//! the application of committed log records.

use std::sync::Arc;

use swarm_api::v1::Timestamp;

use crate::error::StoreError;
use crate::object::Object;
use crate::read::ReadTx;

/// Inserts a new object. `version` is its final version, or `None` for a
/// speculative write whose version the log will decide (kept at 0).
pub(crate) fn create<T: Object>(
    r: &mut ReadTx,
    mut obj: T,
    version: Option<u64>,
    now: Timestamp,
) -> Result<Arc<T>, StoreError> {
    if obj.id().is_empty() {
        return Err(StoreError::InvalidObject {
            kind: T::KIND,
            reason: "an id is required".into(),
        });
    }
    let table = T::table(r);
    if table.get(obj.id()).is_some() {
        return Err(StoreError::Exists {
            kind: T::KIND,
            id: obj.id().to_string(),
        });
    }
    if table.name_taken(obj.name(), obj.id()) {
        return Err(StoreError::NameConflict {
            kind: T::KIND,
            name: obj.name().to_string(),
        });
    }
    let meta = obj.meta_mut();
    meta.version = version.unwrap_or(0);
    meta.created_at = Some(now);
    meta.updated_at = Some(now);
    let obj = Arc::new(obj);
    Arc::make_mut(T::table_mut(r)).insert(obj.clone());
    Ok(obj)
}

/// Replaces an object. The update must be based on the stored version (or
/// on `also_accept`, the version the object had when the current
/// transaction first touched it). Returns the old and the new object.
pub(crate) fn update<T: Object>(
    r: &mut ReadTx,
    mut obj: T,
    version: Option<u64>,
    now: Timestamp,
    also_accept: Option<u64>,
) -> Result<(Arc<T>, Arc<T>), StoreError> {
    let table = T::table(r);
    let Some(old) = table.get(obj.id()).cloned() else {
        return Err(StoreError::NotFound {
            kind: T::KIND,
            id: obj.id().to_string(),
        });
    };
    let given = obj.version();
    if given != old.version() && Some(given) != also_accept {
        return Err(StoreError::SequenceConflict {
            kind: T::KIND,
            id: obj.id().to_string(),
            given,
            current: old.version(),
        });
    }
    if table.name_taken(obj.name(), obj.id()) {
        return Err(StoreError::NameConflict {
            kind: T::KIND,
            name: obj.name().to_string(),
        });
    }
    let created_at = old.meta().and_then(|m| m.created_at);
    let meta = obj.meta_mut();
    meta.version = version.unwrap_or(old.version());
    meta.created_at = created_at;
    meta.updated_at = Some(now);
    let new = Arc::new(obj);
    Arc::make_mut(T::table_mut(r)).replace(&old, new.clone());
    Ok((old, new))
}

/// Removes an object; returns it.
pub(crate) fn delete<T: Object>(r: &mut ReadTx, id: &str) -> Result<Arc<T>, StoreError> {
    if T::table(r).get(id).is_none() {
        return Err(StoreError::NotFound {
            kind: T::KIND,
            id: id.to_string(),
        });
    }
    Arc::make_mut(T::table_mut(r))
        .remove(id)
        .ok_or_else(|| StoreError::NotFound {
            kind: T::KIND,
            id: id.to_string(),
        })
}
