//! A miniature cluster around a [`Scheduler`]: a store of nodes, services
//! and tasks, a replicated/global orchestrator with restarts, and the
//! commit loop the manager runs (assignments become RUNNING tasks,
//! unplaced tasks get their reason).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use swarm_api::v1::generic_resource::Resource;
use swarm_api::v1::placement_preference::Preference;
use swarm_api::v1::{
    Annotations, DiscreteGenericResource, Endpoint, EngineDescription, GenericResource,
    NamedGenericResource, Network, NetworkAttachment, NetworkDriverState, Node, NodeAvailability,
    NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus, Placement, PlacementPreference,
    Platform, PluginDescription, PortConfig, PublishMode, ResourceRequirements, Resources,
    SpreadOver, Task, TaskSpec, TaskState, TaskStatus,
};

use super::workload::{Event, GenericOffer, NodeDef, ServiceDef};
use crate::constraint;
use crate::node_info::NodeInfo;
use crate::scheduler::Scheduler;

/// A service of the simulated cluster.
#[derive(Debug, Clone)]
pub(crate) struct SimService {
    pub(crate) def: ServiceDef,
    spec_version: u64,
    spec: TaskSpec,
    endpoint: Option<Endpoint>,
    networks: Vec<NetworkAttachment>,
}

/// The simulated cluster.
pub struct Simulation {
    scheduler: Box<dyn Scheduler>,
    now: SystemTime,
    pub(crate) nodes: BTreeMap<String, Node>,
    pub(crate) services: BTreeMap<String, SimService>,
    /// Tasks PENDING..RUNNING (ended tasks are dropped).
    pub(crate) tasks: BTreeMap<String, Task>,
    next_task: u64,
    pub(crate) scheduler_time: Duration,
    pub(crate) passes: u64,
    pub(crate) failures_injected: usize,
}

fn cpus_to_nano(c: f64) -> i64 {
    (c * 1e9).round() as i64
}

fn build_node(d: &NodeDef) -> Node {
    let mut generic = Vec::new();
    for (kind, offer) in &d.generic {
        match offer {
            GenericOffer::Named(names) => {
                for n in names {
                    generic.push(GenericResource {
                        resource: Some(Resource::Named(NamedGenericResource {
                            kind: kind.clone(),
                            value: n.clone(),
                        })),
                    });
                }
            }
            GenericOffer::Count(c) => generic.push(GenericResource {
                resource: Some(Resource::Discrete(DiscreteGenericResource {
                    kind: kind.clone(),
                    value: *c,
                })),
            }),
        }
    }
    let role = match d.role.as_deref() {
        Some(r) if r.eq_ignore_ascii_case("manager") => NodeRole::Manager,
        _ => NodeRole::Worker,
    };
    Node {
        id: d.id.clone(),
        spec: Some(NodeSpec {
            annotations: Some(Annotations {
                name: d.id.clone(),
                labels: d.labels.clone().into_iter().collect(),
            }),
            desired_role: role as i32,
            availability: NodeAvailability::Active as i32,
        }),
        description: Some(NodeDescription {
            hostname: d.hostname.clone().unwrap_or_else(|| d.id.clone()),
            platform: Some(Platform {
                architecture: d.arch.clone().unwrap_or_else(|| "x86_64".into()),
                os: d.os.clone().unwrap_or_else(|| "linux".into()),
            }),
            resources: Some(Resources {
                nano_cpus: cpus_to_nano(d.cpus),
                memory_bytes: d.memory.0,
                generic,
            }),
            engine: Some(EngineDescription {
                engine_version: String::new(),
                labels: d.engine_labels.clone().into_iter().collect(),
                plugins: d
                    .plugins
                    .iter()
                    .map(|p| PluginDescription {
                        r#type: p.kind.clone(),
                        name: p.name.clone(),
                    })
                    .collect(),
            }),
            executor: String::new(),
            data_path_addr: String::new(),
        }),
        status: Some(NodeStatus {
            state: NodeState::Ready as i32,
            message: String::new(),
            addr: d.addr.clone().unwrap_or_default(),
        }),
        role: role as i32,
        ..Default::default()
    }
}

fn build_service(def: &ServiceDef) -> SimService {
    let generic = def
        .generic
        .iter()
        .map(|(kind, count)| GenericResource {
            resource: Some(Resource::Discrete(DiscreteGenericResource {
                kind: kind.clone(),
                value: *count,
            })),
        })
        .collect();
    let spec = TaskSpec {
        resources: Some(ResourceRequirements {
            limits: None,
            reservations: Some(Resources {
                nano_cpus: cpus_to_nano(def.cpus),
                memory_bytes: def.memory.0,
                generic,
            }),
        }),
        placement: Some(Placement {
            constraints: def.constraints.clone(),
            preferences: def
                .preferences
                .iter()
                .map(|d| PlacementPreference {
                    preference: Some(Preference::Spread(SpreadOver {
                        spread_descriptor: d.clone(),
                    })),
                })
                .collect(),
            max_replicas: def.max_replicas,
            platforms: def
                .platforms
                .iter()
                .map(|p| Platform {
                    architecture: p.arch.clone(),
                    os: p.os.clone(),
                })
                .collect(),
        }),
        ..Default::default()
    };
    let endpoint = (!def.host_ports.is_empty()).then(|| Endpoint {
        spec: None,
        ports: def
            .host_ports
            .iter()
            .map(|p| PortConfig {
                name: String::new(),
                protocol: 0,
                target_port: *p,
                published_port: *p,
                publish_mode: PublishMode::Host as i32,
            })
            .collect(),
        virtual_ips: Vec::new(),
    });
    let networks = def
        .networks
        .iter()
        .map(|driver| NetworkAttachment {
            network: Some(Network {
                driver_state: Some(NetworkDriverState {
                    name: driver.clone(),
                    options: Default::default(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    SimService {
        def: def.clone(),
        spec_version: 1,
        spec,
        endpoint,
        networks,
    }
}

fn set_state(t: &mut Task, state: TaskState) {
    let s = t.status.get_or_insert_with(TaskStatus::default);
    s.state = state as i32;
}

impl Simulation {
    /// A cluster with no nodes, driven by `scheduler`, at virtual time 0.
    pub fn new(scheduler: Box<dyn Scheduler>) -> Self {
        Simulation {
            scheduler,
            now: SystemTime::UNIX_EPOCH,
            nodes: BTreeMap::new(),
            services: BTreeMap::new(),
            tasks: BTreeMap::new(),
            next_task: 0,
            scheduler_time: Duration::ZERO,
            passes: 0,
            failures_injected: 0,
        }
    }

    /// The scheduler's name.
    pub fn scheduler_name(&self) -> &str {
        self.scheduler.name()
    }

    /// The tasks PENDING..RUNNING, by id.
    pub fn tasks(&self) -> &BTreeMap<String, Task> {
        &self.tasks
    }

    /// The nodes, by id.
    pub fn nodes(&self) -> &BTreeMap<String, Node> {
        &self.nodes
    }

    fn timed<T>(&mut self, f: impl FnOnce(&mut dyn Scheduler) -> T) -> T {
        let start = Instant::now();
        let out = f(self.scheduler.as_mut());
        self.scheduler_time += start.elapsed();
        out
    }

    fn feed_task(&mut self, id: &str) {
        let now = self.now;
        if let Some(t) = self.tasks.get(id).cloned() {
            self.timed(|s| s.upsert_task(&t, now));
        }
    }

    /// Ends a task: it moves to `state`, the scheduler sees it, it is dropped.
    fn end_task(&mut self, id: &str, state: TaskState) {
        if let Some(mut t) = self.tasks.remove(id) {
            set_state(&mut t, state);
            if state != TaskState::Failed {
                t.desired_state = TaskState::Shutdown as i32;
            }
            let now = self.now;
            self.timed(|s| s.upsert_task(&t, now));
        }
    }

    fn end_tasks_on(&mut self, node: &str, state: TaskState) {
        let ids: Vec<String> = self
            .tasks
            .values()
            .filter(|t| t.node_id == node)
            .map(|t| t.id.clone())
            .collect();
        for id in ids {
            self.end_task(&id, state);
        }
    }

    fn set_node(&mut self, id: &str, f: impl FnOnce(&mut Node)) {
        if let Some(n) = self.nodes.get_mut(id) {
            f(n);
            let n = n.clone();
            self.timed(|s| s.upsert_node(&n));
        }
    }

    /// Applies one workload event, then lets the orchestrator and the
    /// scheduler react.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::AddNode(d) => {
                let n = build_node(d);
                self.nodes.insert(n.id.clone(), n.clone());
                self.timed(|s| s.upsert_node(&n));
            }
            Event::RemoveNode { id } => {
                self.end_tasks_on(id, TaskState::Orphaned);
                self.nodes.remove(id);
                self.timed(|s| s.remove_node(id));
            }
            Event::DrainNode { id } => {
                self.set_node(id, |n| {
                    if let Some(s) = n.spec.as_mut() {
                        s.availability = NodeAvailability::Drain as i32;
                    }
                });
                self.end_tasks_on(id, TaskState::Shutdown);
            }
            Event::PauseNode { id } | Event::ActivateNode { id } => {
                let a = if matches!(event, Event::PauseNode { .. }) {
                    NodeAvailability::Pause
                } else {
                    NodeAvailability::Active
                };
                self.set_node(id, |n| {
                    if let Some(s) = n.spec.as_mut() {
                        s.availability = a as i32;
                    }
                });
            }
            Event::NodeDown { id } | Event::NodeUp { id } => {
                let st = if matches!(event, Event::NodeDown { .. }) {
                    NodeState::Down
                } else {
                    NodeState::Ready
                };
                self.set_node(id, |n| {
                    if let Some(s) = n.status.as_mut() {
                        s.state = st as i32;
                    }
                });
                if st == NodeState::Down {
                    self.end_tasks_on(id, TaskState::Orphaned);
                }
            }
            Event::CreateService(def) => {
                self.services.insert(def.name.clone(), build_service(def));
            }
            Event::ScaleService { name, replicas } => {
                if let Some(s) = self.services.get_mut(name) {
                    s.def.replicas = *replicas;
                }
            }
            Event::RemoveService { name } => {
                self.services.remove(name);
                let ids: Vec<String> = self
                    .tasks
                    .values()
                    .filter(|t| &t.service_id == name)
                    .map(|t| t.id.clone())
                    .collect();
                for id in ids {
                    self.end_task(&id, TaskState::Shutdown);
                    self.timed(|s| s.remove_task(&id));
                }
            }
            Event::FailTasks {
                service,
                count,
                node,
            } => {
                let ids: Vec<String> = self
                    .tasks
                    .values()
                    .filter(|t| {
                        &t.service_id == service
                            && t.state() == TaskState::Running
                            && node.as_ref().is_none_or(|n| &t.node_id == n)
                    })
                    .take(*count)
                    .map(|t| t.id.clone())
                    .collect();
                self.failures_injected += ids.len();
                for id in ids {
                    self.end_task(&id, TaskState::Failed);
                }
            }
            Event::Advance { seconds } => {
                self.now += Duration::from_secs_f64(seconds.max(0.0));
            }
        }
        self.reconcile();
        self.schedule();
    }

    fn new_task(&mut self, service: &str, slot: u64, node: Option<&str>) {
        let Some(s) = self.services.get(service) else {
            return;
        };
        self.next_task += 1;
        let id = match node {
            Some(n) => format!("{service}.{n}.{:08}", self.next_task),
            None => format!("{service}.{slot}.{:08}", self.next_task),
        };
        let t = Task {
            id: id.clone(),
            spec: Some(s.spec.clone()),
            spec_version: s.spec_version,
            service_id: service.to_string(),
            slot,
            node_id: node.unwrap_or_default().to_string(),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: TaskState::Pending as i32,
                ..Default::default()
            }),
            endpoint: s.endpoint.clone(),
            networks: s.networks.clone(),
            ..Default::default()
        };
        self.tasks.insert(id.clone(), t);
        self.feed_task(&id);
    }

    /// The orchestrators: replicated services keep `replicas` tasks, global
    /// ones a task on every ready, active node that meets the constraints.
    fn reconcile(&mut self) {
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in names {
            let Some(s) = self.services.get(&name) else {
                continue;
            };
            let mine: Vec<(u64, String, String)> = self
                .tasks
                .values()
                .filter(|t| t.service_id == name)
                .map(|t| (t.slot, t.id.clone(), t.node_id.clone()))
                .collect();
            if s.def.global {
                let constraints = constraint::parse_all(&s.def.constraints).unwrap_or_default();
                let eligible: Vec<String> = self
                    .nodes
                    .values()
                    .filter(|n| {
                        let mut info = NodeInfo::default();
                        info.update_from(n);
                        info.is_available() && constraint::matches_all(&constraints, &info)
                    })
                    .map(|n| n.id.clone())
                    .collect();
                for (_, id, node) in &mine {
                    if !eligible.contains(node) {
                        self.end_task(id, TaskState::Shutdown);
                    }
                }
                for n in eligible {
                    if !mine.iter().any(|(_, _, node)| node == &n) {
                        self.new_task(&name, 0, Some(&n));
                    }
                }
            } else {
                let want = s.def.replicas;
                let mut slots: Vec<u64> = mine.iter().map(|m| m.0).collect();
                slots.sort_unstable();
                for (slot, id, _) in &mine {
                    if *slot > want {
                        self.end_task(id, TaskState::Shutdown);
                    }
                }
                for slot in 1..=want {
                    if slots.binary_search(&slot).is_err() {
                        self.new_task(&name, slot, None);
                    }
                }
            }
        }
    }

    /// One scheduling pass, committed.
    fn schedule(&mut self) {
        let now = self.now;
        let pass = self.timed(|s| s.schedule(now));
        self.passes += 1;
        for a in &pass.assignments {
            let Some(t) = self.tasks.get_mut(&a.task_id) else {
                // The task ended meanwhile: give the decision back.
                let _ = self.timed(|s| s.undo(a));
                continue;
            };
            // The manager's commit, then the agent running the task at once.
            a.apply_to(t, now);
            set_state(t, TaskState::Running);
            let id = a.task_id.clone();
            self.feed_task(&id);
        }
        for u in &pass.unplaced {
            let Some(t) = self.tasks.get_mut(&u.task_id) else {
                continue;
            };
            if u.apply_to(t, now) {
                let id = u.task_id.clone();
                self.feed_task(&id);
            }
        }
    }
}
