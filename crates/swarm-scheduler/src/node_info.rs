//! What the scheduler knows about one node: the attributes filters and
//! constraints read (taken from the `Node` once per node update) and the
//! live accounting of the tasks on it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use swarm_api::v1::{Node, NodeAvailability, NodeRole, NodeState};

use crate::requirements::HostPort;
use crate::resources::NodeResources;

/// A node's operating system and architecture, as it reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlatform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture as reported, e.g. `x86_64`.
    pub architecture: String,
}

/// A plugin present on a node's engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlugin {
    /// `Network`, `Volume` or `Log`.
    pub kind: String,
    /// Plugin name, e.g. `overlay` or `vieux/sshfs:latest`.
    pub name: String,
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    id: String,
    version: u64,
    hostname: String,
    addr: Option<IpAddr>,
    role: NodeRole,
    platform: Option<NodePlatform>,
    node_labels: BTreeMap<String, String>,
    engine_labels: BTreeMap<String, String>,
    /// `None` when the node reports no engine description (then plugin
    /// requirements are not checked, as in SwarmKit).
    plugins: Option<Vec<NodePlugin>>,
    state: NodeState,
    availability: NodeAvailability,
    pub(crate) resources: NodeResources,
    pub(crate) active_tasks: u32,
    pub(crate) host_ports: Vec<(HostPort, u32)>,
}

impl NodeInfo {
    /// The attributes of a node as filters and constraints see them,
    /// without any task accounting (for callers outside the scheduler that
    /// need to evaluate constraints, e.g. a global-service orchestrator).
    pub fn from_node(node: &Node) -> Self {
        let mut info = NodeInfo::placeholder(&node.id);
        info.update_from(node);
        info
    }

    /// A node known only by id (tasks point at it, the node object has not
    /// been seen or was removed): not ready, no resources.
    pub(crate) fn placeholder(id: &str) -> Self {
        NodeInfo {
            id: id.to_string(),
            ..NodeInfo::default()
        }
    }

    /// Takes the attributes of a (new version of a) node, keeping the
    /// accounting of the tasks on it.
    pub(crate) fn update_from(&mut self, node: &Node) {
        self.id.clone_from(&node.id);
        self.version = node.meta.as_ref().map_or(0, |m| m.version);
        let desc = node.description.as_ref();
        self.hostname = desc.map(|d| d.hostname.clone()).unwrap_or_default();
        self.addr = node
            .status
            .as_ref()
            .and_then(|s| s.addr.parse::<IpAddr>().ok())
            .map(|a| a.to_canonical());
        self.role = node.role();
        self.platform = desc
            .and_then(|d| d.platform.as_ref())
            .map(|p| NodePlatform {
                os: p.os.clone(),
                architecture: p.architecture.clone(),
            });
        self.node_labels = node
            .spec
            .as_ref()
            .and_then(|s| s.annotations.as_ref())
            .map(|a| a.labels.clone())
            .unwrap_or_default();
        let engine = desc.and_then(|d| d.engine.as_ref());
        self.engine_labels = engine.map(|e| e.labels.clone()).unwrap_or_default();
        self.plugins = engine.map(|e| {
            e.plugins
                .iter()
                .map(|p| NodePlugin {
                    kind: p.r#type.clone(),
                    name: p.name.clone(),
                })
                .collect()
        });
        self.state = node
            .status
            .as_ref()
            .map_or(NodeState::Unknown, |s| s.state());
        self.availability = node
            .spec
            .as_ref()
            .map_or(NodeAvailability::Active, |s| s.availability());
        self.resources
            .set_total(desc.and_then(|d| d.resources.as_ref()));
    }

    /// The node id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `meta.version` of the node object last seen.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Host name (empty when the node reported none).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The address the node connects from, when it parses as an IP.
    pub fn addr(&self) -> Option<IpAddr> {
        self.addr
    }

    /// Role in force.
    pub fn role(&self) -> NodeRole {
        self.role
    }

    /// Role as constraints compare it: `worker` or `manager`.
    pub fn role_name(&self) -> &'static str {
        match self.role {
            NodeRole::Worker => "worker",
            NodeRole::Manager => "manager",
        }
    }

    /// OS and architecture, when reported.
    pub fn platform(&self) -> Option<&NodePlatform> {
        self.platform.as_ref()
    }

    /// A node label (`node.labels.<name>`), set by the operator.
    pub fn node_label(&self, name: &str) -> Option<&str> {
        self.node_labels.get(name).map(String::as_str)
    }

    /// An engine label (`engine.labels.<name>`), reported by the node.
    pub fn engine_label(&self, name: &str) -> Option<&str> {
        self.engine_labels.get(name).map(String::as_str)
    }

    /// All node labels.
    pub fn node_labels(&self) -> &BTreeMap<String, String> {
        &self.node_labels
    }

    /// Plugins of the node's engine; `None` when the node reports no engine.
    pub fn plugins(&self) -> Option<&[NodePlugin]> {
        self.plugins.as_deref()
    }

    /// Heartbeat state.
    pub fn state(&self) -> NodeState {
        self.state
    }

    /// Availability set by the operator.
    pub fn availability(&self) -> NodeAvailability {
        self.availability
    }

    /// Ready and active: new tasks may be placed.
    pub fn is_available(&self) -> bool {
        self.state == NodeState::Ready && self.availability == NodeAvailability::Active
    }

    /// Resources: totals, reservations, what is left.
    pub fn resources(&self) -> &NodeResources {
        &self.resources
    }

    /// Tasks on the node whose desired state is at most COMPLETE.
    pub fn active_tasks(&self) -> u32 {
        self.active_tasks
    }

    /// True when a task on the node publishes this host port.
    pub fn host_port_in_use(&self, port: HostPort) -> bool {
        self.host_ports.iter().any(|(p, _)| *p == port)
    }

    pub(crate) fn hold_ports(&mut self, ports: &[HostPort]) {
        for p in ports {
            match self.host_ports.iter_mut().find(|(q, _)| q == p) {
                Some((_, n)) => *n += 1,
                None => self.host_ports.push((*p, 1)),
            }
        }
    }

    pub(crate) fn release_ports(&mut self, ports: &[HostPort]) {
        for p in ports {
            if let Some(i) = self.host_ports.iter().position(|(q, _)| q == p) {
                self.host_ports[i].1 -= 1;
                if self.host_ports[i].1 == 0 {
                    self.host_ports.swap_remove(i);
                }
            }
        }
    }
}
