//! Recent task failures per (service, spec version) and node, for
//! SwarmKit's underweighting of nodes where a service keeps failing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Failure times per node slot.
type PerNode = HashMap<u32, Vec<SystemTime>>;

#[derive(Debug, Default)]
pub(crate) struct Failures {
    /// service id -> spec version -> node slot -> failure times.
    by_service: HashMap<Arc<str>, HashMap<u64, PerNode>>,
    last_prune: Option<SystemTime>,
}

/// Time since `then`; a clock that went backwards counts as no time.
fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

impl Failures {
    pub(crate) fn record(
        &mut self,
        service: &str,
        spec_version: u64,
        slot: u32,
        now: SystemTime,
        window: Duration,
    ) {
        if !self.by_service.contains_key(service) {
            self.by_service.insert(Arc::from(service), HashMap::new());
        }
        let Some(versions) = self.by_service.get_mut(service) else {
            return;
        };
        let times = versions
            .entry(spec_version)
            .or_default()
            .entry(slot)
            .or_default();
        times.retain(|t| age(now, *t) < window);
        times.push(now);
    }

    /// Fills `out[slot]` with the failures within the window, returning the
    /// slots touched (to clear them afterwards).
    pub(crate) fn fill(
        &self,
        service: &str,
        spec_version: u64,
        now: SystemTime,
        window: Duration,
        out: &mut [u32],
        touched: &mut Vec<u32>,
    ) {
        let Some(per_node) = self
            .by_service
            .get(service)
            .and_then(|v| v.get(&spec_version))
        else {
            return;
        };
        for (&slot, times) in per_node {
            let n = times.iter().filter(|t| age(now, **t) < window).count();
            if let Some(o) = out.get_mut(slot as usize) {
                *o = u32::try_from(n).unwrap_or(u32::MAX);
                touched.push(slot);
            }
        }
    }

    /// Failures of one (service, version) on one node within the window.
    pub(crate) fn count(
        &self,
        service: &str,
        spec_version: u64,
        slot: u32,
        now: SystemTime,
        window: Duration,
    ) -> u32 {
        self.by_service
            .get(service)
            .and_then(|v| v.get(&spec_version))
            .and_then(|m| m.get(&slot))
            .map_or(0, |times| {
                let n = times.iter().filter(|t| age(now, **t) < window).count();
                u32::try_from(n).unwrap_or(u32::MAX)
            })
    }

    /// Drops expired failures, at most once per window.
    pub(crate) fn prune(&mut self, now: SystemTime, window: Duration) {
        if self.last_prune.is_some_and(|p| age(now, p) < window) {
            return;
        }
        self.last_prune = Some(now);
        self.by_service.retain(|_, versions| {
            versions.retain(|_, per_node| {
                per_node.retain(|_, times| {
                    times.retain(|t| age(now, *t) < window);
                    !times.is_empty()
                });
                !per_node.is_empty()
            });
            !versions.is_empty()
        });
    }

    /// Forgets a node slot (freed, soon reused by another node).
    pub(crate) fn forget_slot(&mut self, slot: u32) {
        self.by_service.retain(|_, versions| {
            versions.retain(|_, per_node| {
                per_node.remove(&slot);
                !per_node.is_empty()
            });
            !versions.is_empty()
        });
    }
}
