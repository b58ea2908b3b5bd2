//! The heartbeat period in force: the cluster object's
//! `spec.dispatcher.heartbeat_period` (what `swarmctl cluster update
//! --dispatcher-heartbeat` changes), falling back to the configured one.
//! Kept in an atomic so heartbeats read it without locks or store reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use swarm_api::v1::Cluster;
use swarm_store::{Event, Kind, Store, WatchFilter};

/// The current heartbeat period.
#[derive(Debug)]
pub(crate) struct Period {
    nanos: AtomicU64,
}

impl Period {
    pub(crate) fn new(initial: Duration) -> Self {
        Period {
            nanos: AtomicU64::new(nanos(initial)),
        }
    }

    /// The period now.
    pub(crate) fn get(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    fn set_from(&self, cluster: &Cluster) {
        let period = cluster
            .spec
            .as_ref()
            .and_then(|s| s.dispatcher.as_ref())
            .and_then(|d| d.heartbeat_period.as_ref())
            .and_then(|p| p.to_std().ok())
            .filter(|p| !p.is_zero());
        if let Some(p) = period {
            let old = self.nanos.swap(nanos(p), Ordering::Relaxed);
            if old != nanos(p) {
                tracing::info!(period = ?p, "dispatcher heartbeat period set from the cluster");
            }
        }
    }

    /// Follows the cluster object in `store` until the store closes.
    pub(crate) async fn follow(self: std::sync::Arc<Self>, store: Store) {
        let (clusters, mut watcher) = store.view_and_watch(
            WatchFilter::all().kinds([Kind::Cluster]).commits(false),
            |v| v.all::<Cluster>(),
        );
        if let Some(c) = clusters.first() {
            self.set_from(c);
        }
        while let Ok(e) = watcher.recv().await {
            if let Event::Created(o) | Event::Updated { new: o, .. } = e
                && let Some(c) = o.downcast::<Cluster>()
            {
                self.set_from(c);
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
