//! SwarmKit's filters, with its refusal messages.

use super::{Candidate, Filter, nodes_phrase};
use crate::constraint;
use crate::requirements::{TaskRequirements, normalize_arch};

/// The node is READY and its availability is ACTIVE.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadyFilter;

impl Filter for ReadyFilter {
    fn name(&self) -> &str {
        "ready"
    }

    fn enabled(&self, _: &TaskRequirements) -> bool {
        true
    }

    fn check(&self, _: &TaskRequirements, c: &Candidate<'_>) -> bool {
        c.node.is_available()
    }

    fn explain(&self, nodes: usize) -> String {
        format!("{} not available for new tasks", nodes_phrase(nodes))
    }
}

/// The node has the CPU, memory and generic resources the task reserves.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResourceFilter;

impl Filter for ResourceFilter {
    fn name(&self) -> &str {
        "resources"
    }

    fn enabled(&self, t: &TaskRequirements) -> bool {
        !t.reservations.is_empty()
    }

    fn check(&self, t: &TaskRequirements, c: &Candidate<'_>) -> bool {
        c.node.resources().fits(&t.reservations)
    }

    fn explain(&self, nodes: usize) -> String {
        format!("insufficient resources on {}", nodes_phrase(nodes))
    }
}

/// The node's engine has the network, volume and log plugins the task
/// needs. Nodes without an engine description pass (SwarmKit: plugins are
/// not known there); a log driver is only required when the node reports
/// at least one log plugin (older engines report none).
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginFilter;

/// (type present at all, this plugin present). A plugin named `name`
/// matches `name` and `name:latest`.
fn plugin_on_node(
    plugins: &[crate::node_info::NodePlugin],
    kind: &str,
    name: &str,
) -> (bool, bool) {
    let mut kind_found = false;
    for p in plugins {
        if p.kind != kind {
            continue;
        }
        kind_found = true;
        if p.name == name || p.name.strip_prefix(name) == Some(":latest") {
            return (true, true);
        }
    }
    (kind_found, false)
}

impl Filter for PluginFilter {
    fn name(&self) -> &str {
        "plugins"
    }

    fn enabled(&self, t: &TaskRequirements) -> bool {
        !t.plugins.is_empty()
    }

    fn check(&self, t: &TaskRequirements, c: &Candidate<'_>) -> bool {
        let Some(plugins) = c.node.plugins() else {
            return true;
        };
        if t.plugins
            .volume
            .iter()
            .any(|v| !plugin_on_node(plugins, "Volume", v).1)
        {
            return false;
        }
        if t.plugins
            .network
            .iter()
            .any(|n| !plugin_on_node(plugins, "Network", n).1)
        {
            return false;
        }
        if let Some(log) = &t.plugins.log {
            let (kind_found, exists) = plugin_on_node(plugins, "Log", log);
            if kind_found && !exists {
                return false;
            }
        }
        true
    }

    fn explain(&self, nodes: usize) -> String {
        format!("missing plugin on {}", nodes_phrase(nodes))
    }
}

/// Every placement constraint holds on the node.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConstraintFilter;

impl Filter for ConstraintFilter {
    fn name(&self) -> &str {
        "constraints"
    }

    fn enabled(&self, t: &TaskRequirements) -> bool {
        !t.constraints.is_empty()
    }

    fn check(&self, t: &TaskRequirements, c: &Candidate<'_>) -> bool {
        constraint::matches_all(&t.constraints, c.node)
    }

    fn explain(&self, nodes: usize) -> String {
        format!(
            "scheduling constraints not satisfied on {}",
            nodes_phrase(nodes)
        )
    }
}

/// The node's OS and architecture are among the image's platforms
/// (`x86_64` is `amd64`, `aarch64` is `arm64`, an empty field accepts any).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlatformFilter;

impl Filter for PlatformFilter {
    fn name(&self) -> &str {
        "platform"
    }

    fn enabled(&self, t: &TaskRequirements) -> bool {
        !t.platforms.is_empty()
    }

    fn check(&self, t: &TaskRequirements, c: &Candidate<'_>) -> bool {
        let Some(np) = c.node.platform() else {
            return false;
        };
        let arch = normalize_arch(&np.architecture);
        t.platforms.iter().any(|p| {
            (p.architecture.is_empty() || p.architecture == arch)
                && (p.os.is_empty() || p.os == np.os)
        })
    }

    fn explain(&self, nodes: usize) -> String {
        format!("unsupported platform on {}", nodes_phrase(nodes))
    }
}

/// No task on the node publishes one of the task's host-mode ports.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostPortFilter;

impl Filter for HostPortFilter {
    fn name(&self) -> &str {
        "host ports"
    }

    fn enabled(&self, t: &TaskRequirements) -> bool {
        !t.host_ports.is_empty()
    }

    fn check(&self, t: &TaskRequirements, c: &Candidate<'_>) -> bool {
        !t.host_ports.iter().any(|p| c.node.host_port_in_use(*p))
    }

    fn explain(&self, nodes: usize) -> String {
        format!("host-mode port already in use on {}", nodes_phrase(nodes))
    }
}

/// The node runs fewer active tasks of the service than `max_replicas`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaxReplicasFilter;

impl Filter for MaxReplicasFilter {
    fn name(&self) -> &str {
        "max replicas"
    }

    fn enabled(&self, t: &TaskRequirements) -> bool {
        t.max_replicas > 0
    }

    fn check(&self, t: &TaskRequirements, c: &Candidate<'_>) -> bool {
        u64::from(c.service_tasks) < t.max_replicas
    }

    fn explain(&self, _nodes: usize) -> String {
        // SwarmKit's wording, without a count.
        "max replicas per node limit exceed".to_string()
    }
}
