//! Repeating committed writes on another version with the same contents
//! (the spare a local transaction or a log record writes to in place; see
//! `Writer::spare`). The writes succeeded once, so they need no checks.

use std::sync::Arc;

use swarm_api::v1::{Cluster, Config, Network, Node, Secret, Service, Task};

use crate::object::{AnyObject, Object};
use crate::read::ReadTx;
use crate::watch::Event;

/// One write to repeat.
#[derive(Clone, Copy)]
pub(crate) enum Write<'a> {
    Create(&'a AnyObject),
    Update {
        old: &'a AnyObject,
        new: &'a AnyObject,
    },
    Delete(&'a AnyObject),
}

impl<'a> Write<'a> {
    /// The write an event reports (`None` for a commit marker).
    pub(crate) fn of_event(e: &'a Event) -> Option<Self> {
        match e {
            Event::Created(o) => Some(Write::Create(o)),
            Event::Updated { old, new } => Some(Write::Update { old, new }),
            Event::Deleted(o) => Some(Write::Delete(o)),
            Event::Commit { .. } => None,
        }
    }

    fn object(self) -> &'a AnyObject {
        match self {
            Write::Create(o) | Write::Delete(o) | Write::Update { new: o, .. } => o,
        }
    }
}

/// Repeats one write on `view`.
pub(crate) fn redo(view: &mut ReadTx, write: Write<'_>) {
    fn typed<T: Object>(view: &mut ReadTx, write: Write<'_>) {
        let table = Arc::make_mut(T::table_mut(view));
        match write {
            Write::Create(new) => {
                if let Some(new) = T::from_any(new) {
                    table.insert(new.clone());
                }
            }
            Write::Update { old, new } => {
                if let (Some(old), Some(new)) = (T::from_any(old), T::from_any(new)) {
                    table.replace(old, new.clone());
                }
            }
            Write::Delete(old) => {
                table.remove(old.id());
            }
        }
    }
    match write.object() {
        AnyObject::Node(_) => typed::<Node>(view, write),
        AnyObject::Service(_) => typed::<Service>(view, write),
        AnyObject::Task(_) => typed::<Task>(view, write),
        AnyObject::Network(_) => typed::<Network>(view, write),
        AnyObject::Cluster(_) => typed::<Cluster>(view, write),
        AnyObject::Secret(_) => typed::<Secret>(view, write),
        AnyObject::Config(_) => typed::<Config>(view, write),
    }
}

/// Repeats a log record's writes, given as the events applying it gave.
pub(crate) fn redo_events(view: &mut ReadTx, events: &[Event]) {
    for write in events.iter().filter_map(Write::of_event) {
        redo(view, write);
    }
}
