//! What a task asks of a node, extracted once from the task.
//!
//! Tasks with equal requirements are placement-equivalent: the scheduler
//! places them as one group (one pass over the nodes), whether they come
//! from one service and spec version (SwarmKit's grouping) or are one-off
//! tasks without a service.

use swarm_api::v1::generic_resource::Resource;
use swarm_api::v1::placement_preference::Preference;
use swarm_api::v1::{Protocol, PublishMode, Task};

use crate::constraint::{self, Constraint, ENGINE_LABEL_PREFIX, NODE_LABEL_PREFIX};

/// A count of one kind of generic resource a task reserves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GenericRequest {
    /// Kind, e.g. `gpu`.
    pub kind: String,
    /// Units wanted.
    pub count: i64,
}

/// Resources set aside on the node for the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Reservations {
    /// CPU in units of 1e-9 CPUs.
    pub nano_cpus: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
    /// Generic resources, as counts.
    pub generic: Vec<GenericRequest>,
    /// The task reserves a *named* generic resource, which SwarmKit
    /// refuses: no node has enough resources for it.
    pub has_named_request: bool,
}

impl Reservations {
    /// True when nothing is reserved (the resource filter is off).
    pub fn is_empty(&self) -> bool {
        self.nano_cpus == 0
            && self.memory_bytes == 0
            && self.generic.is_empty()
            && !self.has_named_request
    }
}

/// Where a spread preference reads its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelRef {
    /// `node.labels.<name>`.
    Node(String),
    /// `engine.labels.<name>`.
    Engine(String),
}

impl LabelRef {
    /// Parses a spread descriptor (`node.labels.<name>` or
    /// `engine.labels.<name>`, prefixes case-insensitive). Other
    /// descriptors are ignored by SwarmKit, and give `None` here.
    pub fn parse(descriptor: &str) -> Option<LabelRef> {
        let strip = |prefix: &str| {
            (descriptor.len() > prefix.len()
                && descriptor.is_char_boundary(prefix.len())
                && descriptor[..prefix.len()].eq_ignore_ascii_case(prefix))
            .then(|| descriptor[prefix.len()..].to_string())
        };
        strip(NODE_LABEL_PREFIX)
            .map(LabelRef::Node)
            .or_else(|| strip(ENGINE_LABEL_PREFIX).map(LabelRef::Engine))
    }
}

/// A platform an image supports; the architecture is normalised
/// (`x86_64` is `amd64`, `aarch64` is `arm64`), empty fields mean any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlatformReq {
    /// Operating system, or empty for any.
    pub os: String,
    /// Normalised architecture, or empty for any.
    pub architecture: String,
}

/// The architecture name SwarmKit compares: `x86_64` is `amd64`, `aarch64`
/// is `arm64`.
pub fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A host-mode published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Protocol (raw protocol value of [`Protocol`]).
    pub protocol: i32,
    /// The published port.
    pub port: u32,
}

/// Plugins a node's engine must have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PluginRequirements {
    /// Network drivers of the task's networks.
    pub network: Vec<String>,
    /// Volume drivers of the task's mounts.
    pub volume: Vec<String>,
    /// The log driver, when named and not `none`.
    pub log: Option<String>,
}

impl PluginRequirements {
    /// True when no plugin is needed (the plugin filter is off).
    pub fn is_empty(&self) -> bool {
        self.network.is_empty() && self.volume.is_empty() && self.log.is_none()
    }
}

/// Everything about a task that decides where it may go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TaskRequirements {
    /// Resource reservations.
    pub reservations: Reservations,
    /// Parsed constraints. As in SwarmKit, constraints that fail to parse
    /// (the control API refuses them, so only old or foreign data has them)
    /// turn the constraint filter off for the task, and
    /// [`TaskRequirements::constraint_error`] says why.
    pub constraints: Vec<Constraint>,
    /// Why the constraints were dropped, if they were.
    pub constraint_error: Option<String>,
    /// Spread preferences, outermost first.
    pub spread: Vec<LabelRef>,
    /// At most this many active tasks of the service per node (0: no limit).
    pub max_replicas: u64,
    /// Platforms the image supports (empty: any).
    pub platforms: Vec<PlatformReq>,
    /// Plugins needed on the node.
    pub plugins: PluginRequirements,
    /// Host-mode published ports the node must have free.
    pub host_ports: Vec<HostPort>,
}

impl TaskRequirements {
    /// Extracts the requirements of a task: reservations and placement from
    /// its spec, network drivers from its attachments, host ports from its
    /// allocated endpoint.
    pub fn from_task(task: &Task) -> Self {
        let mut req = TaskRequirements::default();
        if let Some(spec) = &task.spec {
            if let Some(r) = spec
                .resources
                .as_ref()
                .and_then(|r| r.reservations.as_ref())
            {
                // Validation refuses negative amounts; clamping keeps foreign data
                // from making room out of nothing.
                req.reservations.nano_cpus = r.nano_cpus.max(0);
                req.reservations.memory_bytes = r.memory_bytes.max(0);
                for g in &r.generic {
                    match &g.resource {
                        Some(Resource::Discrete(d)) => {
                            req.reservations.generic.push(GenericRequest {
                                kind: d.kind.clone(),
                                count: d.value.max(0),
                            })
                        }
                        Some(Resource::Named(_)) => req.reservations.has_named_request = true,
                        None => {}
                    }
                }
            }
            if let Some(p) = &spec.placement {
                match constraint::parse_all(&p.constraints) {
                    Ok(c) => req.constraints = c,
                    Err(e) => req.constraint_error = Some(e.to_string()),
                }
                for pref in &p.preferences {
                    if let Some(Preference::Spread(s)) = &pref.preference
                        && let Some(l) = LabelRef::parse(&s.spread_descriptor)
                    {
                        req.spread.push(l);
                    }
                }
                req.max_replicas = p.max_replicas;
                req.platforms = p
                    .platforms
                    .iter()
                    .map(|pl| PlatformReq {
                        os: pl.os.clone(),
                        architecture: normalize_arch(&pl.architecture).to_string(),
                    })
                    .collect();
            }
            if let Some(l) = &spec.log_driver
                && !l.name.is_empty()
                && l.name != "none"
            {
                req.plugins.log = Some(l.name.clone());
            }
        }
        for n in &task.networks {
            if let Some(d) = n.network.as_ref().and_then(|n| n.driver_state.as_ref())
                && !d.name.is_empty()
                && !req.plugins.network.contains(&d.name)
            {
                req.plugins.network.push(d.name.clone());
            }
        }
        if let Some(e) = &task.endpoint {
            for p in &e.ports {
                if p.publish_mode == PublishMode::Host as i32 && p.published_port != 0 {
                    let hp = HostPort {
                        protocol: p.protocol,
                        port: p.published_port,
                    };
                    if !req.host_ports.contains(&hp) {
                        req.host_ports.push(hp);
                    }
                }
            }
        }
        req
    }
}

/// The protocol name of a host port, for messages.
pub fn protocol_name(raw: i32) -> &'static str {
    match Protocol::try_from(raw) {
        Ok(Protocol::Tcp) => "tcp",
        Ok(Protocol::Udp) => "udp",
        Ok(Protocol::Sctp) => "sctp",
        Err(_) => "unknown",
    }
}
