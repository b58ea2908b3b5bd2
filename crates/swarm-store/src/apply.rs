//! Applying a committed log record to a version of the store: the same on
//! every manager, in log order, all or nothing.

use std::sync::Arc;

use swarm_api::v1::{StoreActionBatch, StoreActionKind, stored_object};

use crate::error::StoreError;
use crate::object::{Kind, Object, stored_kind_id};
use crate::read::ReadTx;
use crate::watch::Event;
use crate::write;

/// Applies `batch` at log index `index` to `view`, returning the events.
/// On error `view` may be partly changed: the caller discards it.
pub(crate) fn apply_batch(
    view: &mut ReadTx,
    index: u64,
    batch: &StoreActionBatch,
) -> Result<Vec<Event>, StoreError> {
    let now = batch.proposed_at.unwrap_or_default();
    let mut events = Vec::with_capacity(batch.actions.len() + 1);
    for (i, action) in batch.actions.iter().enumerate() {
        let kind = StoreActionKind::try_from(action.kind).map_err(|_| {
            StoreError::Corrupt(format!("action {i}: unknown kind {}", action.kind))
        })?;
        let object = action
            .target
            .as_ref()
            .and_then(|t| t.object.as_ref())
            .ok_or_else(|| StoreError::Corrupt(format!("action {i}: no object")))?;
        use stored_object::Object as O;
        let event = match object {
            O::Node(o) => one(view, kind, o, index, now),
            O::Service(o) => one(view, kind, o, index, now),
            O::Task(o) => one(view, kind, o, index, now),
            O::Network(o) => one(view, kind, o, index, now),
            O::Cluster(o) => one(view, kind, o, index, now),
            O::Secret(o) => one(view, kind, o, index, now),
            O::Config(o) => one(view, kind, o, index, now),
        }?;
        events.push(event);
    }
    view.version = index;
    Ok(events)
}

fn one<T: Object>(
    view: &mut ReadTx,
    kind: StoreActionKind,
    obj: &T,
    index: u64,
    now: swarm_api::v1::Timestamp,
) -> Result<Event, StoreError> {
    match kind {
        StoreActionKind::Create => {
            let new = write::create(view, obj.clone(), Some(index), now)?;
            Ok(Event::Created(T::into_any(new)))
        }
        StoreActionKind::Update => {
            let (old, new) = write::update(view, obj.clone(), Some(index), now, None)?;
            Ok(Event::Updated {
                old: T::into_any(old),
                new: T::into_any(new),
            })
        }
        StoreActionKind::Remove => {
            let old = write::delete::<T>(view, obj.id())?;
            Ok(Event::Deleted(T::into_any(old)))
        }
        StoreActionKind::Unknown => Err(StoreError::Corrupt("action kind not set".into())),
    }
}

/// Kinds and ids written (created or updated) by a batch.
pub(crate) fn written(batch: &StoreActionBatch) -> Vec<(Kind, Arc<str>)> {
    batch
        .actions
        .iter()
        .filter(|a| a.kind() != StoreActionKind::Remove)
        .filter_map(|a| a.target.as_ref().and_then(|t| t.object.as_ref()))
        .map(|o| {
            let (kind, id) = stored_kind_id(o);
            (kind, Arc::from(id))
        })
        .collect()
}
