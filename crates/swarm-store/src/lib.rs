//! The transactional, watchable object store of swarm-rs managers.
//!
//! The store holds the cluster's objects (nodes, services, tasks, networks,
//! the cluster, secrets, configs) in typed tables with indexes. It is an
//! in-memory, multi-version store: every version is immutable and shared
//! structurally with the next (persistent B-trees), so
//!
//! - a read ([`Store::view`], [`Store::view_with`]) is a consistent
//!   [`ReadTx`] that never blocks writers and is never blocked by them;
//! - a write ([`Store::update`]) runs a closure on its own [`Tx`], sees its
//!   own writes, and commits all or nothing; every object carries
//!   `meta.version`, and an update based on another version than the stored
//!   one fails as [`StoreError::SequenceConflict`] (optimistic concurrency);
//! - bulk changes ([`Store::batch`]) are split into bounded transactions,
//!   like SwarmKit's `Batch`;
//! - watchers ([`Store::watch`], [`Store::view_and_watch`]) receive each
//!   committed transaction's changes followed by a commit marker; a watcher
//!   that falls too far behind is dropped with [`WatchError::Lagged`]
//!   rather than letting memory grow;
//! - [`Store::save_snapshot`] and [`Store::restore`] move the whole state as
//!   one protobuf message.
//!
//! # Writing in place
//!
//! Copying B-tree paths on every commit (and freeing the old paths when the
//! previous version goes) is most of what a small transaction would cost.
//! So the writer keeps a *spare*: the previous version, brought up to date
//! by replaying the last commit's writes on it once no reader holds it any
//! more (the version swap turns every reader's guard into a counted
//! reference, so "unique" is exact). The next transaction or log record
//! writes to the spare in place, and the version it replaces becomes the
//! next spare. A reader holding an old version is never affected: while
//! one does, that version is not reused and the write copies paths as
//! usual. The price is memory: up to two copies of the index trees (the
//! objects themselves are shared).
//!
//! # Local and replicated
//!
//! Without a [`Proposer`] the store is local: a transaction commits when
//! its closure returns, and versions count transactions. With one (the
//! raft crate provides it) a transaction's changes are proposed as a
//! [`StoreActionBatch`](swarm_api::v1::StoreActionBatch) and take effect
//! when the log has committed them and called [`Store::apply`] — the same
//! call on every manager, in log order — and versions are log indexes.
//! Preconditions (versions, unique names, existence) are checked again at
//! apply time, so a conflict with a transaction that committed first is
//! detected identically everywhere.
//!
//! # Example
//!
//! ```
//! use swarm_api::v1::{Annotations, Service, ServiceSpec, Task};
//! use swarm_store::{By, Store, StoreError, WatchFilter, Kind, Event};
//!
//! # tokio_test_block_on(async {
//! let store = Store::new();
//! let mut watcher = store.watch(WatchFilter::all().kinds([Kind::Service]));
//!
//! let spec = ServiceSpec {
//!     annotations: Some(Annotations { name: "web".into(), ..Default::default() }),
//!     ..Default::default()
//! };
//! let svc = store
//!     .update(|tx| tx.create(Service { id: "svc1".into(), spec: Some(spec), ..Default::default() }))
//!     .await?;
//! assert_eq!(svc.meta.as_ref().unwrap().version, 1);
//!
//! store
//!     .update(|tx| {
//!         for slot in 1..=3u64 {
//!             tx.create(Task {
//!                 id: format!("task{slot}"),
//!                 service_id: "svc1".into(),
//!                 slot,
//!                 ..Default::default()
//!             })?;
//!         }
//!         Ok::<_, StoreError>(())
//!     })
//!     .await?;
//!
//! let view = store.view();
//! assert_eq!(view.find::<Task>(By::ServiceId("svc1"))?.len(), 3);
//! assert_eq!(view.lookup::<Service>("WEB")?.id, "svc1"); // names are case-insensitive
//!
//! // A write based on a stale version is refused.
//! let stale = (*svc).clone();
//! store.update(|tx| tx.update(stale.clone())).await?;
//! let err = store.update(|tx| tx.update(stale)).await.unwrap_err();
//! assert!(matches!(err, StoreError::SequenceConflict { .. }));
//!
//! assert!(matches!(watcher.try_recv(), Ok(Some(Event::Created(_)))));
//! # Ok::<(), StoreError>(())
//! # }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

#![forbid(unsafe_code)]

mod apply;
mod batch;
mod changes;
mod clock;
mod error;
mod key;
mod kinds;
mod object;
mod proposer;
mod query;
mod read;
mod replay;
mod snapshot;
mod store;
mod table;
mod tx;
mod watch;
mod write;

pub use batch::Batch;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{LeaderHint, ProposeError, StoreError, WatchError};
pub use object::{AnyObject, Index, Kind, Object};
pub use proposer::{BoxFuture, Proposer};
pub use query::By;
pub use read::ReadTx;
pub use store::{MAX_CHANGES_PER_TRANSACTION, MAX_TRANSACTION_BYTES, Store};
pub use tx::Tx;
pub use watch::{DEFAULT_WATCH_CAPACITY, Event, WatchFilter, Watcher};
