//! [`ClusterScheduler`]: incremental books fed by store events, and
//! scheduling passes over the queued tasks.

mod events;
mod passes;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use swarm_api::v1::{GenericResource, Node, Task, TaskState};

use super::fxhash::FxHashMap;
use super::place::{FailureRule, Scratch};
use super::state::State;
use super::{Assignment, Pass, Scheduler};
use crate::filter::{Candidate, Filter, Pipeline};
use crate::node_info::NodeInfo;
use crate::policy::{Policy, Spread};
use crate::requirements::TaskRequirements;

/// SwarmKit: a node is underweighted for a service after this many failures...
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// ...within this window.
pub const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Tasks that share a service, a spec version and requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct GroupKey {
    service: u32,
    spec_version: u64,
    req: u32,
}

#[derive(Debug)]
struct Group {
    seq: u64,
    /// Queued tasks in arrival order, with the stamp they were queued
    /// under. Entries of tasks that left the queue are dropped lazily (their
    /// record no longer carries the stamp).
    tasks: Vec<(u64, Arc<str>)>,
    /// Tasks still queued.
    live: usize,
    /// Entries from this index on arrived after the last attempt.
    fresh_from: usize,
    /// Set when the last attempt left tasks unplaced: the capacity epoch
    /// then, and the reason.
    parked: Option<(u64, String)>,
}

#[derive(Debug)]
enum Place {
    /// Pending, no node: waits in its group, under this queue stamp.
    Queued { stamp: u64 },
    /// Pending on a node chosen by the orchestrator (global services): the
    /// node must be confirmed. `failed_epoch` is set when it was refused.
    Preassigned {
        slot: u32,
        failed_epoch: Option<u64>,
    },
    /// Booked on a node (ASSIGNED..RUNNING, or a tentative decision).
    OnNode {
        slot: u32,
        tentative: bool,
        preassigned: bool,
        held: Vec<GenericResource>,
    },
}

#[derive(Debug)]
struct TaskRec {
    service: u32,
    spec_version: u64,
    req: u32,
    active: bool,
    state: TaskState,
    place: Place,
}

/// Builds a [`ClusterScheduler`].
pub struct SchedulerBuilder<P: Policy = Spread> {
    policy: P,
    pipeline: Pipeline,
    failure_rule: FailureRule,
}

impl Default for SchedulerBuilder<Spread> {
    fn default() -> Self {
        SchedulerBuilder {
            policy: Spread,
            pipeline: Pipeline::swarmkit(),
            failure_rule: FailureRule {
                window: DEFAULT_FAILURE_WINDOW,
                threshold: DEFAULT_MAX_FAILURES,
            },
        }
    }
}

impl<P: Policy> SchedulerBuilder<P> {
    /// Ranks nodes with another policy.
    pub fn policy<Q: Policy>(self, policy: Q) -> SchedulerBuilder<Q> {
        SchedulerBuilder {
            policy,
            pipeline: self.pipeline,
            failure_rule: self.failure_rule,
        }
    }

    /// Replaces the filter pipeline (default: SwarmKit's).
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Appends a filter after the others.
    pub fn filter(mut self, filter: impl Filter + 'static) -> Self {
        self.pipeline.push(Box::new(filter));
        self
    }

    /// Underweights a node for a service after `max_failures` failures of
    /// that service within `window` (SwarmKit: 5 within 5 minutes).
    pub fn failure_underweighting(mut self, max_failures: u32, window: Duration) -> Self {
        self.failure_rule = FailureRule {
            window,
            threshold: max_failures.max(1),
        };
        self
    }

    /// The scheduler.
    pub fn build(self) -> ClusterScheduler<P> {
        ClusterScheduler {
            policy: self.policy,
            pipeline: self.pipeline,
            failure_rule: self.failure_rule,
            state: State::default(),
            scratch: Scratch::default(),
            tasks: FxHashMap::default(),
            groups: FxHashMap::default(),
            preassigned: BTreeSet::new(),
            next_seq: 0,
            next_stamp: 0,
        }
    }
}

/// SwarmKit's scheduler, incremental: node and task events update its books
/// in O(1) (amortised), and a pass only does work for groups with queued
/// tasks. See the crate documentation for the contract with the manager.
pub struct ClusterScheduler<P: Policy = Spread> {
    policy: P,
    pipeline: Pipeline,
    failure_rule: FailureRule,
    state: State,
    scratch: Scratch,
    tasks: FxHashMap<Arc<str>, TaskRec>,
    groups: FxHashMap<GroupKey, Group>,
    preassigned: BTreeSet<Arc<str>>,
    next_seq: u64,
    next_stamp: u64,
}

impl Default for ClusterScheduler<Spread> {
    fn default() -> Self {
        SchedulerBuilder::default().build()
    }
}

impl<P: Policy> std::fmt::Debug for ClusterScheduler<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterScheduler")
            .field("policy", &self.policy.name())
            .field("pipeline", &self.pipeline)
            .field("tasks", &self.tasks.len())
            .field("queued", &self.queued())
            .finish()
    }
}

impl ClusterScheduler<Spread> {
    /// SwarmKit's defaults: spread policy, SwarmKit's filters, 5 failures
    /// within 5 minutes underweight a node.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder, starting from the defaults.
    pub fn builder() -> SchedulerBuilder<Spread> {
        SchedulerBuilder::default()
    }
}

impl<P: Policy> ClusterScheduler<P> {
    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The filter pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// A node as the scheduler sees it, if it exists.
    pub fn node(&self, id: &str) -> Option<&NodeInfo> {
        let s = self.state.lookup_node(id)?;
        self.state.slot(s).filter(|s| s.live).map(|s| &s.info)
    }

    /// Every node, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.state.live_nodes().map(|(_, s)| &s.info)
    }

    /// Active tasks of a service on a node.
    pub fn service_tasks_on(&self, service_id: &str, node_id: &str) -> u32 {
        match (
            self.state.services.lookup(service_id),
            self.state.lookup_node(node_id),
        ) {
            (Some(svc), Some(slot)) => self.state.service_tasks(svc, slot),
            _ => 0,
        }
    }

    /// Failures of a service's spec version on a node within the failure
    /// window before `now` (SwarmKit underweights the node at 5).
    pub fn recent_failures(
        &self,
        service_id: &str,
        spec_version: u64,
        node_id: &str,
        now: SystemTime,
    ) -> u32 {
        self.state.lookup_node(node_id).map_or(0, |slot| {
            self.state.failures.count(
                service_id,
                spec_version,
                slot,
                now,
                self.failure_rule.window,
            )
        })
    }

    /// Tasks waiting for a node (queued and pre-assigned).
    pub fn queued(&self) -> usize {
        self.groups.values().map(|g| g.live).sum::<usize>() + self.preassigned.len()
    }

    /// Tasks the scheduler tracks.
    pub fn tracked_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// The node a tracked task is booked on (tentatively or not).
    pub fn task_node(&self, task_id: &str) -> Option<&str> {
        match &self.tasks.get(task_id)?.place {
            Place::OnNode { slot, .. } => self.state.slot(*slot).map(|s| s.info.id()),
            _ => None,
        }
    }

    /// Why a node would refuse a task now (the first refusing filter's
    /// explanation for one node), or `None` when it would take it: a dry
    /// run of the pipeline, for diagnostics such as `docker node ps`-style
    /// tooling. Books nothing.
    pub fn explain_node(&self, task: &Task, node_id: &str, now: SystemTime) -> Option<String> {
        let req = TaskRequirements::from_task(task);
        let slot = self.state.lookup_node(node_id)?;
        let s = self.state.slot(slot)?;
        let svc = self
            .state
            .services
            .lookup(&task.service_id)
            .map_or(0, |svc| self.state.service_tasks(svc, slot));
        let c = self.candidate(&s.info, svc, &task.service_id, task.spec_version, slot, now);
        let enabled = self.pipeline.enabled_for(&req);
        let f = self.pipeline.first_refusal(&enabled, &req, &c)?;
        Some(self.pipeline.filters()[f].explain(1))
    }

    fn candidate<'a>(
        &self,
        info: &'a NodeInfo,
        service_tasks: u32,
        service_id: &str,
        spec_version: u64,
        slot: u32,
        now: SystemTime,
    ) -> Candidate<'a> {
        let recent_failures = self.state.failures.count(
            service_id,
            spec_version,
            slot,
            now,
            self.failure_rule.window,
        );
        Candidate {
            node: info,
            service_tasks,
            recent_failures,
            failure_penalty: if recent_failures >= self.failure_rule.threshold {
                recent_failures
            } else {
                0
            },
        }
    }

    /// Drops a task record and everything it holds.
    fn forget(&mut self, id: &str) {
        let Some((key, rec)) = self.tasks.remove_entry(id) else {
            return;
        };
        match rec.place {
            Place::Queued { .. } => {
                let gk = GroupKey {
                    service: rec.service,
                    spec_version: rec.spec_version,
                    req: rec.req,
                };
                if let Some(g) = self.groups.get_mut(&gk) {
                    g.live = g.live.saturating_sub(1);
                    if g.live == 0 {
                        self.groups.remove(&gk);
                    }
                }
            }
            Place::Preassigned { slot, .. } => {
                self.preassigned.remove(&key);
                self.state.unref_node(slot);
            }
            Place::OnNode { slot, held, .. } => {
                if let Some(req) = self.state.reqs.get(rec.req).cloned() {
                    self.state
                        .detach(slot, rec.service, &req, rec.active, &held);
                }
                self.state.unref_node(slot);
            }
        }
        self.state.release_service(rec.service);
        self.state.reqs.release(rec.req);
    }

    /// A new record's interned service and requirements.
    fn intern(&mut self, task: &Task) -> (u32, u32) {
        let service = self.state.acquire_service(&task.service_id);
        let req = TaskRequirements::from_task(task);
        let req_id = self.state.reqs.acquire(&req, || Arc::new(req.clone()));
        (service, req_id)
    }

    /// Queues a task in its group; returns the stamp to record.
    fn enqueue(&mut self, id: Arc<str>, service: u32, spec_version: u64, req: u32) -> u64 {
        let key = GroupKey {
            service,
            spec_version,
            req,
        };
        let next_seq = &mut self.next_seq;
        let g = self.groups.entry(key).or_insert_with(|| {
            *next_seq += 1;
            Group {
                seq: *next_seq,
                tasks: Vec::new(),
                live: 0,
                fresh_from: 0,
                parked: None,
            }
        });
        self.next_stamp += 1;
        g.tasks.push((self.next_stamp, id));
        g.live += 1;
        self.next_stamp
    }
}

impl<P: Policy> Scheduler for ClusterScheduler<P> {
    fn upsert_node(&mut self, node: &Node) {
        self.state.upsert_node(node);
    }

    fn remove_node(&mut self, node_id: &str) {
        self.state.remove_node(node_id);
    }

    fn upsert_task(&mut self, task: &Task, now: SystemTime) {
        self.on_task(task, now);
    }

    fn remove_task(&mut self, task_id: &str) {
        self.forget(task_id);
    }

    fn schedule(&mut self, now: SystemTime) -> Pass {
        self.state.failures.prune(now, self.failure_rule.window);
        let mut pass = Pass::default();
        self.schedule_preassigned(now, &mut pass);
        self.schedule_groups(now, &mut pass);
        pass
    }

    fn undo(&mut self, assignment: &Assignment) -> bool {
        let Some((key, rec)) = self.tasks.get_key_value(assignment.task_id.as_str()) else {
            return false;
        };
        let Place::OnNode {
            slot,
            tentative: true,
            preassigned,
            ..
        } = rec.place
        else {
            return false;
        };
        if self
            .state
            .slot(slot)
            .is_none_or(|s| s.info.id() != assignment.node_id)
        {
            return false;
        }
        let key = key.clone();
        let Some(rec) = self.tasks.get_mut(&key) else {
            return false;
        };
        let held = match std::mem::replace(&mut rec.place, Place::Queued { stamp: 0 }) {
            Place::OnNode { held, .. } => held,
            _ => Vec::new(),
        };
        let (service, spec_version, req_id, active) =
            (rec.service, rec.spec_version, rec.req, rec.active);
        if let Some(req) = self.state.reqs.get(req_id).cloned() {
            self.state.detach(slot, service, &req, active, &held);
        }
        if preassigned {
            if let Some(rec) = self.tasks.get_mut(&key) {
                rec.place = Place::Preassigned {
                    slot,
                    failed_epoch: None,
                };
            }
            self.preassigned.insert(key);
        } else {
            self.state.unref_node(slot);
            let stamp = self.enqueue(key.clone(), service, spec_version, req_id);
            if let Some(rec) = self.tasks.get_mut(&key) {
                rec.place = Place::Queued { stamp };
            }
        }
        true
    }

    fn name(&self) -> &str {
        self.policy.name()
    }
}
