//! The scheduler's books: node slots, per-service task counts per node,
//! interned requirements, and booking/unbooking a task on a node.

use super::fxhash::FxHashMap;
use std::hash::Hash;
use std::sync::Arc;

use swarm_api::v1::{GenericResource, Node};

use super::failures::Failures;
use crate::node_info::NodeInfo;
use crate::requirements::TaskRequirements;

/// One node slot. A slot outlives its node while tasks still point at it
/// (`refs`), so removing a node and seeing tasks on unknown nodes need no
/// special cases.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) info: NodeInfo,
    /// The node object exists (created and not removed).
    pub(crate) live: bool,
    /// Deterministic tie-break between equally ranked nodes.
    pub(crate) tiebreak: u64,
    /// Task records pointing at this slot.
    pub(crate) refs: u32,
}

/// FNV-1a of the node id: ties between equal nodes are broken the same way
/// whatever order the nodes were added in.
fn tiebreak(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Values interned with a reference count.
#[derive(Debug)]
pub(crate) struct Interner<K: ?Sized + Eq + Hash> {
    index: FxHashMap<Arc<K>, u32>,
    entries: Vec<Option<(Arc<K>, u32)>>,
    free: Vec<u32>,
}

impl<K: ?Sized + Eq + Hash> Default for Interner<K> {
    fn default() -> Self {
        Interner {
            index: FxHashMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K: ?Sized + Eq + Hash> Interner<K> {
    /// The id of `key`, taking one reference; `make` builds the shared
    /// value when the key is new.
    pub(crate) fn acquire(&mut self, key: &K, make: impl FnOnce() -> Arc<K>) -> u32 {
        if let Some(&id) = self.index.get(key) {
            if let Some(Some((_, refs))) = self.entries.get_mut(id as usize) {
                *refs += 1;
            }
            return id;
        }
        let value = make();
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some((value.clone(), 1));
                id
            }
            None => {
                self.entries.push(Some((value.clone(), 1)));
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(value, id);
        id
    }

    /// Drops one reference; true when the entry was freed.
    pub(crate) fn release(&mut self, id: u32) -> bool {
        let Some(slot) = self.entries.get_mut(id as usize) else {
            return false;
        };
        let Some((value, refs)) = slot else {
            return false;
        };
        *refs -= 1;
        if *refs > 0 {
            return false;
        }
        self.index.remove(&**value);
        *slot = None;
        self.free.push(id);
        true
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Arc<K>> {
        self.entries
            .get(id as usize)
            .and_then(|e| e.as_ref())
            .map(|(v, _)| v)
    }

    pub(crate) fn lookup(&self, key: &K) -> Option<u32> {
        self.index.get(key).copied()
    }
}

/// Everything the placement reads and books, apart from the task records.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) slots: Vec<Option<Slot>>,
    node_index: FxHashMap<String, u32>,
    free_slots: Vec<u32>,
    pub(crate) services: Interner<str>,
    /// Per service id: active tasks per node slot.
    pub(crate) service_counts: Vec<FxHashMap<u32, u32>>,
    pub(crate) reqs: Interner<TaskRequirements>,
    pub(crate) failures: Failures,
    /// Bumped whenever capacity may have grown (a node changed, a task let
    /// go of a node): parked groups are retried only then.
    pub(crate) epoch: u64,
}

impl State {
    pub(crate) fn slot(&self, slot: u32) -> Option<&Slot> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Slot> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    pub(crate) fn lookup_node(&self, id: &str) -> Option<u32> {
        self.node_index.get(id).copied()
    }

    /// The slot of a node id, created (as a placeholder that is not live)
    /// when the id is unknown.
    fn slot_for(&mut self, id: &str) -> u32 {
        if let Some(&s) = self.node_index.get(id) {
            return s;
        }
        let slot = Slot {
            info: NodeInfo::placeholder(id),
            live: false,
            tiebreak: tiebreak(id),
            refs: 0,
        };
        let s = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(slot);
                s
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.node_index.insert(id.to_string(), s);
        s
    }

    /// Takes a reference on the slot of `id` (for a task record).
    pub(crate) fn ref_node(&mut self, id: &str) -> u32 {
        let s = self.slot_for(id);
        if let Some(slot) = self.slot_mut(s) {
            slot.refs += 1;
        }
        s
    }

    /// Takes one more reference on a known slot.
    pub(crate) fn ref_slot(&mut self, s: u32) {
        if let Some(slot) = self.slot_mut(s) {
            slot.refs += 1;
        }
    }

    /// Drops a task record's reference; frees a dead, unreferenced slot.
    pub(crate) fn unref_node(&mut self, s: u32) {
        let free = match self.slot_mut(s) {
            Some(slot) => {
                slot.refs = slot.refs.saturating_sub(1);
                slot.refs == 0 && !slot.live
            }
            None => false,
        };
        if free {
            self.free_slot(s);
        }
    }

    fn free_slot(&mut self, s: u32) {
        if let Some(slot) = self.slots.get_mut(s as usize).and_then(Option::take) {
            self.node_index.remove(slot.info.id());
            self.free_slots.push(s);
            self.failures.forget_slot(s);
        }
    }

    pub(crate) fn upsert_node(&mut self, node: &Node) {
        let s = self.slot_for(&node.id);
        if let Some(slot) = self.slot_mut(s) {
            slot.info.update_from(node);
            slot.live = true;
        }
        self.epoch += 1;
    }

    pub(crate) fn remove_node(&mut self, id: &str) {
        let Some(s) = self.lookup_node(id) else {
            return;
        };
        let free = match self.slot_mut(s) {
            Some(slot) => {
                slot.live = false;
                slot.refs == 0
            }
            None => false,
        };
        if free {
            self.free_slot(s);
        }
    }

    pub(crate) fn service_id(&self, service: u32) -> &str {
        self.services.get(service).map_or("", |s| s)
    }

    pub(crate) fn acquire_service(&mut self, id: &str) -> u32 {
        let s = self.services.acquire(id, || Arc::from(id));
        let s_us = s as usize;
        if self.service_counts.len() <= s_us {
            self.service_counts
                .resize_with(s_us + 1, FxHashMap::default);
        }
        s
    }

    pub(crate) fn release_service(&mut self, service: u32) {
        if self.services.release(service)
            && let Some(c) = self.service_counts.get_mut(service as usize)
        {
            *c = FxHashMap::default();
        }
    }

    pub(crate) fn service_tasks(&self, service: u32, slot: u32) -> u32 {
        self.service_counts
            .get(service as usize)
            .and_then(|m| m.get(&slot))
            .copied()
            .unwrap_or(0)
    }

    fn add_active(&mut self, slot: u32, service: u32, delta: i32) {
        if let Some(s) = self.slot_mut(slot) {
            s.info.active_tasks = s.info.active_tasks.saturating_add_signed(delta);
        }
        if let Some(m) = self.service_counts.get_mut(service as usize) {
            let c = m.entry(slot).or_insert(0);
            *c = c.saturating_add_signed(delta);
            if *c == 0 {
                m.remove(&slot);
            }
        }
    }

    /// Books a task on a node: reservations, host ports, active counts.
    /// Returns the generic resources the task holds.
    pub(crate) fn attach(
        &mut self,
        slot: u32,
        service: u32,
        req: &TaskRequirements,
        active: bool,
        assigned: Option<&[GenericResource]>,
    ) -> Vec<GenericResource> {
        let held = match self.slot_mut(slot) {
            Some(s) => {
                s.info.hold_ports(&req.host_ports);
                s.info.resources.claim(&req.reservations, assigned)
            }
            None => Vec::new(),
        };
        if active {
            self.add_active(slot, service, 1);
        }
        held
    }

    /// Undoes [`State::attach`].
    pub(crate) fn detach(
        &mut self,
        slot: u32,
        service: u32,
        req: &TaskRequirements,
        active: bool,
        held: &[GenericResource],
    ) {
        if let Some(s) = self.slot_mut(slot) {
            s.info.release_ports(&req.host_ports);
            s.info.resources.release(&req.reservations, held);
        }
        if active {
            self.add_active(slot, service, -1);
        }
        self.epoch += 1;
    }

    /// A task on a node changed between active and inactive desired state.
    pub(crate) fn set_active(&mut self, slot: u32, service: u32, active: bool) {
        if active {
            self.add_active(slot, service, 1);
        } else {
            self.add_active(slot, service, -1);
            self.epoch += 1;
        }
    }

    /// Live nodes, in slot order.
    pub(crate) fn live_nodes(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|s| s.live).map(|s| (i as u32, s)))
    }
}
