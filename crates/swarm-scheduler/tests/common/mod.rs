//! Builders for nodes and tasks shared by the integration tests.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use swarm_api::v1::generic_resource::Resource;
use swarm_api::v1::placement_preference::Preference;
use swarm_api::v1::*;
use swarm_scheduler::{Pass, Scheduler};

pub(crate) const GIB: i64 = 1 << 30;
pub(crate) const CPU: i64 = 1_000_000_000;

pub(crate) fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
}

/// A node builder.
#[derive(Clone)]
pub(crate) struct N(pub(crate) Node);

pub(crate) fn node(id: &str) -> N {
    N(Node {
        id: id.into(),
        spec: Some(NodeSpec {
            annotations: Some(Annotations {
                name: id.into(),
                labels: Default::default(),
            }),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: NodeState::Ready as i32,
            ..Default::default()
        }),
        description: Some(NodeDescription {
            hostname: format!("host-{id}"),
            platform: Some(Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            }),
            engine: Some(EngineDescription::default()),
            ..Default::default()
        }),
        role: NodeRole::Worker as i32,
        ..Default::default()
    })
}

impl N {
    pub(crate) fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .spec
            .as_mut()
            .unwrap()
            .annotations
            .as_mut()
            .unwrap()
            .labels
            .insert(k.into(), v.into());
        self
    }
    pub(crate) fn engine_label(mut self, k: &str, v: &str) -> Self {
        self.desc()
            .engine
            .as_mut()
            .unwrap()
            .labels
            .insert(k.into(), v.into());
        self
    }
    fn desc(&mut self) -> &mut NodeDescription {
        self.0.description.as_mut().unwrap()
    }
    pub(crate) fn res(mut self, cpus: i64, mem_gib: i64) -> Self {
        let r = self.desc().resources.get_or_insert_with(Resources::default);
        r.nano_cpus = cpus * CPU;
        r.memory_bytes = mem_gib * GIB;
        self
    }
    pub(crate) fn named(mut self, kind: &str, value: &str) -> Self {
        let r = self.desc().resources.get_or_insert_with(Resources::default);
        r.generic.push(GenericResource {
            resource: Some(Resource::Named(NamedGenericResource {
                kind: kind.into(),
                value: value.into(),
            })),
        });
        self
    }
    pub(crate) fn discrete(mut self, kind: &str, value: i64) -> Self {
        let r = self.desc().resources.get_or_insert_with(Resources::default);
        r.generic.push(GenericResource {
            resource: Some(Resource::Discrete(DiscreteGenericResource {
                kind: kind.into(),
                value,
            })),
        });
        self
    }
    pub(crate) fn state(mut self, s: NodeState) -> Self {
        self.0.status.as_mut().unwrap().state = s as i32;
        self
    }
    pub(crate) fn availability(mut self, a: NodeAvailability) -> Self {
        self.0.spec.as_mut().unwrap().availability = a as i32;
        self
    }
    pub(crate) fn platform(mut self, os: &str, arch: &str) -> Self {
        self.desc().platform = Some(Platform {
            architecture: arch.into(),
            os: os.into(),
        });
        self
    }
    pub(crate) fn no_platform(mut self) -> Self {
        self.desc().platform = None;
        self
    }
    pub(crate) fn no_engine(mut self) -> Self {
        self.desc().engine = None;
        self
    }
    pub(crate) fn plugin(mut self, kind: &str, name: &str) -> Self {
        self.desc()
            .engine
            .as_mut()
            .unwrap()
            .plugins
            .push(PluginDescription {
                r#type: kind.into(),
                name: name.into(),
            });
        self
    }
    pub(crate) fn addr(mut self, a: &str) -> Self {
        self.0.status.as_mut().unwrap().addr = a.into();
        self
    }
    pub(crate) fn role(mut self, r: NodeRole) -> Self {
        self.0.role = r as i32;
        self
    }
    pub(crate) fn hostname(mut self, h: &str) -> Self {
        self.desc().hostname = h.into();
        self
    }
}

/// A task builder: PENDING, desired RUNNING, no node.
#[derive(Clone)]
pub(crate) struct T(pub(crate) Task);

pub(crate) fn task(id: &str, service: &str) -> T {
    T(Task {
        id: id.into(),
        service_id: service.into(),
        spec_version: 1,
        desired_state: TaskState::Running as i32,
        status: Some(TaskStatus {
            state: TaskState::Pending as i32,
            ..Default::default()
        }),
        spec: Some(TaskSpec {
            placement: Some(Placement::default()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

impl T {
    fn placement(&mut self) -> &mut Placement {
        self.0.spec.as_mut().unwrap().placement.as_mut().unwrap()
    }
    fn reservations(&mut self) -> &mut Resources {
        self.0
            .spec
            .as_mut()
            .unwrap()
            .resources
            .get_or_insert_with(ResourceRequirements::default)
            .reservations
            .get_or_insert_with(Resources::default)
    }
    pub(crate) fn id(mut self, id: &str) -> Self {
        self.0.id = id.into();
        self
    }
    pub(crate) fn cpus(mut self, cpus: i64) -> Self {
        self.reservations().nano_cpus = cpus * CPU;
        self
    }
    pub(crate) fn mem_gib(mut self, g: i64) -> Self {
        self.reservations().memory_bytes = g * GIB;
        self
    }
    pub(crate) fn generic(mut self, kind: &str, n: i64) -> Self {
        self.reservations().generic.push(GenericResource {
            resource: Some(Resource::Discrete(DiscreteGenericResource {
                kind: kind.into(),
                value: n,
            })),
        });
        self
    }
    pub(crate) fn named_reservation(mut self, kind: &str, v: &str) -> Self {
        self.reservations().generic.push(GenericResource {
            resource: Some(Resource::Named(NamedGenericResource {
                kind: kind.into(),
                value: v.into(),
            })),
        });
        self
    }
    pub(crate) fn constraint(mut self, c: &str) -> Self {
        self.placement().constraints.push(c.into());
        self
    }
    pub(crate) fn spread(mut self, d: &str) -> Self {
        self.placement().preferences.push(PlacementPreference {
            preference: Some(Preference::Spread(SpreadOver {
                spread_descriptor: d.into(),
            })),
        });
        self
    }
    pub(crate) fn max_replicas(mut self, n: u64) -> Self {
        self.placement().max_replicas = n;
        self
    }
    pub(crate) fn platform(mut self, os: &str, arch: &str) -> Self {
        self.placement().platforms.push(Platform {
            architecture: arch.into(),
            os: os.into(),
        });
        self
    }
    pub(crate) fn host_port(mut self, port: u32, proto: Protocol) -> Self {
        self.0
            .endpoint
            .get_or_insert_with(Endpoint::default)
            .ports
            .push(PortConfig {
                protocol: proto as i32,
                target_port: port,
                published_port: port,
                publish_mode: PublishMode::Host as i32,
                ..Default::default()
            });
        self
    }
    pub(crate) fn network_driver(mut self, driver: &str) -> Self {
        self.0.networks.push(NetworkAttachment {
            network: Some(Network {
                driver_state: Some(NetworkDriverState {
                    name: driver.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        self
    }
    pub(crate) fn log_driver(mut self, name: &str) -> Self {
        self.0.spec.as_mut().unwrap().log_driver = Some(Driver {
            name: name.into(),
            ..Default::default()
        });
        self
    }
    pub(crate) fn version(mut self, v: u64) -> Self {
        self.0.spec_version = v;
        self
    }
    /// Already on a node, in `state`.
    pub(crate) fn on(mut self, node: &str, state: TaskState) -> Self {
        self.0.node_id = node.into();
        self.0.status.as_mut().unwrap().state = state as i32;
        self
    }
    pub(crate) fn desired(mut self, s: TaskState) -> Self {
        self.0.desired_state = s as i32;
        self
    }
    /// `n` copies with ids `<prefix>-<i>`.
    pub(crate) fn times(&self, prefix: &str, n: usize) -> Vec<Task> {
        (0..n)
            .map(|i| {
                let mut t = self.0.clone();
                t.id = format!("{prefix}-{i:04}");
                t
            })
            .collect()
    }
}

/// Feeds nodes and tasks, runs one pass.
pub(crate) fn run(s: &mut dyn Scheduler, nodes: &[N], tasks: &[Task]) -> Pass {
    for n in nodes {
        s.upsert_node(&n.0);
    }
    for t in tasks {
        s.upsert_task(t, t0());
    }
    s.schedule(t0())
}

/// Commits a pass as the manager would: every assignment comes back ASSIGNED.
pub(crate) fn commit(s: &mut dyn Scheduler, pass: &Pass, tasks: &mut HashMap<String, Task>) {
    for a in &pass.assignments {
        if let Some(t) = tasks.get_mut(&a.task_id) {
            a.apply_to(t, t0());
            s.upsert_task(t, t0());
        }
    }
}

/// Tasks placed per node.
pub(crate) fn per_node(pass: &Pass) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in &pass.assignments {
        *m.entry(a.node_id.clone()).or_default() += 1;
    }
    m
}
