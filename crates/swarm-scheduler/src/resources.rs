//! Node resources as the scheduler accounts them: totals from the node's
//! description, minus what the tasks on the node reserve.
//!
//! Generic resources follow SwarmKit: a node advertises *named* resources
//! (`gpu=UUID1`, `gpu=UUID2`) or *discrete* ones (`ssd=4`); a task reserves
//! a count of a kind (`gpu=1`). A count of a named kind is met by handing
//! the task that many of the node's free names, in the order the node lists
//! them; the names assigned are reported with the decision
//! (`Task.assigned_generic_resources`).

use std::collections::HashMap;

use swarm_api::v1::generic_resource::Resource;
use swarm_api::v1::{DiscreteGenericResource, GenericResource, NamedGenericResource, Resources};

use crate::requirements::{GenericRequest, Reservations};

/// One kind of generic resource on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericPool {
    kind: String,
    pool: Pool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pool {
    Discrete {
        total: i64,
        available: i64,
    },
    Named {
        values: Vec<NamedValue>,
        free: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NamedValue {
    value: String,
    held: u32,
}

impl GenericPool {
    /// The kind, e.g. `gpu`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Units still free.
    pub fn available(&self) -> i64 {
        match &self.pool {
            Pool::Discrete { available, .. } => *available,
            Pool::Named { free, .. } => *free as i64,
        }
    }

    /// Units the node advertises.
    pub fn total(&self) -> i64 {
        match &self.pool {
            Pool::Discrete { total, .. } => *total,
            Pool::Named { values, .. } => values.len() as i64,
        }
    }

    /// True for a named kind (its units have identities).
    pub fn is_named(&self) -> bool {
        matches!(self.pool, Pool::Named { .. })
    }

    /// The free names of a named kind, in the node's order.
    pub fn free_names(&self) -> impl Iterator<Item = &str> {
        let values: &[NamedValue] = match &self.pool {
            Pool::Named { values, .. } => values,
            Pool::Discrete { .. } => &[],
        };
        values
            .iter()
            .filter(|v| v.held == 0)
            .map(|v| v.value.as_str())
    }
}

/// Totals, reservations and what is left on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeResources {
    total_nano_cpus: i64,
    total_memory_bytes: i64,
    reserved_nano_cpus: i64,
    reserved_memory_bytes: i64,
    generic: Vec<GenericPool>,
    /// Discrete units reserved per kind (kept across node updates).
    reserved_discrete: HashMap<String, i64>,
    /// Named units held by tasks, (kind, value) with multiplicity.
    held_named: Vec<(String, String)>,
}

impl NodeResources {
    /// CPU the node advertises, in units of 1e-9 CPUs.
    pub fn total_nano_cpus(&self) -> i64 {
        self.total_nano_cpus
    }

    /// Memory the node advertises, in bytes.
    pub fn total_memory_bytes(&self) -> i64 {
        self.total_memory_bytes
    }

    /// CPU left for new reservations (may be negative when tasks placed
    /// elsewhere, e.g. pre-assigned ones, over-reserve the node).
    pub fn available_nano_cpus(&self) -> i64 {
        self.total_nano_cpus.saturating_sub(self.reserved_nano_cpus)
    }

    /// Memory left for new reservations.
    pub fn available_memory_bytes(&self) -> i64 {
        self.total_memory_bytes
            .saturating_sub(self.reserved_memory_bytes)
    }

    /// CPU reserved by the tasks on the node.
    pub fn reserved_nano_cpus(&self) -> i64 {
        self.reserved_nano_cpus
    }

    /// Memory reserved by the tasks on the node.
    pub fn reserved_memory_bytes(&self) -> i64 {
        self.reserved_memory_bytes
    }

    /// The generic resource pools, in the order the node lists kinds.
    pub fn generic(&self) -> &[GenericPool] {
        &self.generic
    }

    /// Replaces the totals with a node's (new) description, keeping what the
    /// tasks on the node reserve.
    pub(crate) fn set_total(&mut self, total: Option<&Resources>) {
        let (cpus, mem, generic) = match total {
            Some(r) => (r.nano_cpus, r.memory_bytes, r.generic.as_slice()),
            None => (0, 0, &[][..]),
        };
        self.total_nano_cpus = cpus;
        self.total_memory_bytes = mem;
        self.generic.clear();
        for g in generic {
            match &g.resource {
                Some(Resource::Discrete(d)) => match self.pool_mut(&d.kind) {
                    Some(Pool::Discrete { total, available }) => {
                        *total = total.saturating_add(d.value);
                        *available = available.saturating_add(d.value);
                    }
                    Some(Pool::Named { .. }) => {}
                    None => self.generic.push(GenericPool {
                        kind: d.kind.clone(),
                        pool: Pool::Discrete {
                            total: d.value,
                            available: d.value,
                        },
                    }),
                },
                Some(Resource::Named(n)) => match self.pool_mut(&n.kind) {
                    Some(Pool::Named { values, free }) => {
                        values.push(NamedValue {
                            value: n.value.clone(),
                            held: 0,
                        });
                        *free += 1;
                    }
                    Some(Pool::Discrete { .. }) => {}
                    None => self.generic.push(GenericPool {
                        kind: n.kind.clone(),
                        pool: Pool::Named {
                            values: vec![NamedValue {
                                value: n.value.clone(),
                                held: 0,
                            }],
                            free: 1,
                        },
                    }),
                },
                None => {}
            }
        }
        for (kind, used) in &self.reserved_discrete {
            if let Some(p) = self.generic.iter_mut().find(|p| &p.kind == kind)
                && let Pool::Discrete { available, .. } = &mut p.pool
            {
                *available = available.saturating_sub(*used);
            }
        }
        let held = std::mem::take(&mut self.held_named);
        for (kind, value) in &held {
            mark_named(&mut self.generic, kind, value, true);
        }
        self.held_named = held;
    }

    fn pool_mut(&mut self, kind: &str) -> Option<&mut Pool> {
        self.generic
            .iter_mut()
            .find(|p| p.kind == kind)
            .map(|p| &mut p.pool)
    }

    /// SwarmKit's resource check: CPU, memory and every generic request fit.
    pub fn fits(&self, r: &Reservations) -> bool {
        if r.nano_cpus > self.available_nano_cpus()
            || r.memory_bytes > self.available_memory_bytes()
        {
            return false;
        }
        if r.has_named_request {
            // A task may only reserve counts; SwarmKit refuses the task.
            return false;
        }
        r.generic.iter().all(|g| self.has_enough(g))
    }

    fn has_enough(&self, g: &GenericRequest) -> bool {
        match self.generic.iter().find(|p| p.kind == g.kind) {
            None => false,
            Some(p) => g.count <= p.available(),
        }
    }

    /// Books a task's reservations. With `assigned` (a task the store
    /// already shows on the node) those named units are held; otherwise
    /// free units are chosen. Returns what the task holds.
    pub(crate) fn claim(
        &mut self,
        r: &Reservations,
        assigned: Option<&[GenericResource]>,
    ) -> Vec<GenericResource> {
        self.reserved_nano_cpus = self.reserved_nano_cpus.saturating_add(r.nano_cpus);
        self.reserved_memory_bytes = self.reserved_memory_bytes.saturating_add(r.memory_bytes);
        let held: Vec<GenericResource> = match assigned {
            Some(a) => a.to_vec(),
            None => self.choose(r),
        };
        for g in &held {
            match &g.resource {
                Some(Resource::Discrete(d)) => {
                    let used = self.reserved_discrete.entry(d.kind.clone()).or_default();
                    *used = used.saturating_add(d.value);
                    if let Some(Pool::Discrete { available, .. }) = self.pool_mut(&d.kind) {
                        *available = available.saturating_sub(d.value);
                    }
                }
                Some(Resource::Named(n)) => {
                    mark_named(&mut self.generic, &n.kind, &n.value, true);
                    self.held_named.push((n.kind.clone(), n.value.clone()));
                }
                None => {}
            }
        }
        held
    }

    fn choose(&self, r: &Reservations) -> Vec<GenericResource> {
        let mut out = Vec::new();
        for g in &r.generic {
            let Some(p) = self.generic.iter().find(|p| p.kind == g.kind) else {
                continue;
            };
            match &p.pool {
                Pool::Discrete { available, .. } => {
                    if g.count != 0 && *available >= g.count {
                        out.push(GenericResource {
                            resource: Some(Resource::Discrete(DiscreteGenericResource {
                                kind: g.kind.clone(),
                                value: g.count,
                            })),
                        });
                    }
                }
                Pool::Named { values, .. } => {
                    let want = usize::try_from(g.count).unwrap_or(0);
                    for v in values.iter().filter(|v| v.held == 0).take(want) {
                        out.push(GenericResource {
                            resource: Some(Resource::Named(NamedGenericResource {
                                kind: g.kind.clone(),
                                value: v.value.clone(),
                            })),
                        });
                    }
                }
            }
        }
        out
    }

    /// Gives back what a task held.
    pub(crate) fn release(&mut self, r: &Reservations, held: &[GenericResource]) {
        self.reserved_nano_cpus = self.reserved_nano_cpus.saturating_sub(r.nano_cpus);
        self.reserved_memory_bytes = self.reserved_memory_bytes.saturating_sub(r.memory_bytes);
        for g in held {
            match &g.resource {
                Some(Resource::Discrete(d)) => {
                    if let Some(used) = self.reserved_discrete.get_mut(&d.kind) {
                        *used = used.saturating_sub(d.value);
                        if *used == 0 {
                            self.reserved_discrete.remove(&d.kind);
                        }
                    }
                    if let Some(Pool::Discrete { available, .. }) = self.pool_mut(&d.kind) {
                        *available = available.saturating_add(d.value);
                    }
                }
                Some(Resource::Named(n)) => {
                    if let Some(i) = self
                        .held_named
                        .iter()
                        .position(|(k, v)| k == &n.kind && v == &n.value)
                    {
                        self.held_named.swap_remove(i);
                        mark_named(&mut self.generic, &n.kind, &n.value, false);
                    }
                }
                None => {}
            }
        }
    }
}

fn mark_named(pools: &mut [GenericPool], kind: &str, value: &str, hold: bool) {
    let Some(GenericPool {
        pool: Pool::Named { values, free },
        ..
    }) = pools.iter_mut().find(|p| p.kind == kind)
    else {
        return;
    };
    let Some(v) = values.iter_mut().find(|v| v.value == value) else {
        return;
    };
    if hold {
        if v.held == 0 {
            *free -= 1;
        }
        v.held += 1;
    } else if v.held > 0 {
        v.held -= 1;
        if v.held == 0 {
            *free += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(kind: &str, value: &str) -> GenericResource {
        GenericResource {
            resource: Some(Resource::Named(NamedGenericResource {
                kind: kind.into(),
                value: value.into(),
            })),
        }
    }

    fn discrete(kind: &str, value: i64) -> GenericResource {
        GenericResource {
            resource: Some(Resource::Discrete(DiscreteGenericResource {
                kind: kind.into(),
                value,
            })),
        }
    }

    fn res(gpus: i64, ssd: i64) -> Reservations {
        Reservations {
            generic: vec![
                GenericRequest {
                    kind: "gpu".into(),
                    count: gpus,
                },
                GenericRequest {
                    kind: "ssd".into(),
                    count: ssd,
                },
            ],
            ..Reservations::default()
        }
    }

    #[test]
    fn named_units_are_handed_out_in_order_and_returned() {
        let mut n = NodeResources::default();
        n.set_total(Some(&Resources {
            nano_cpus: 0,
            memory_bytes: 0,
            generic: vec![named("gpu", "A"), named("gpu", "B"), discrete("ssd", 4)],
        }));
        assert!(n.fits(&res(2, 4)));
        assert!(!n.fits(&res(3, 0)));
        let held = n.claim(&res(1, 3), None);
        assert_eq!(held, vec![named("gpu", "A"), discrete("ssd", 3)]);
        assert!(!n.fits(&res(0, 2)));
        let names: Vec<_> = n.generic()[0].free_names().collect();
        assert_eq!(names, vec!["B"]);
        // A node update keeps the holdings.
        n.set_total(Some(&Resources {
            nano_cpus: 0,
            memory_bytes: 0,
            generic: vec![named("gpu", "A"), named("gpu", "B"), discrete("ssd", 8)],
        }));
        assert_eq!(n.generic()[0].available(), 1);
        assert_eq!(n.generic()[1].available(), 5);
        n.release(&res(1, 3), &held);
        assert_eq!(n.generic()[0].available(), 2);
        assert_eq!(n.generic()[1].available(), 8);
    }
}
