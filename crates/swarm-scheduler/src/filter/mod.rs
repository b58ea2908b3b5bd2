//! Filters: can this node take a task of this group? Each filter also
//! explains, in SwarmKit's words, why it refused some number of nodes.
//!
//! The default [`Pipeline`] runs SwarmKit's filters in SwarmKit's order:
//! [`ReadyFilter`], [`ResourceFilter`], [`PluginFilter`],
//! [`ConstraintFilter`], [`PlatformFilter`], [`HostPortFilter`],
//! [`MaxReplicasFilter`]. A node is refused by the first filter that fails,
//! and an unplaceable task is explained by how many nodes each filter
//! refused, most frequent first.

mod builtin;
mod pipeline;

pub use builtin::{
    ConstraintFilter, HostPortFilter, MaxReplicasFilter, PlatformFilter, PluginFilter, ReadyFilter,
    ResourceFilter,
};
pub use pipeline::{Pipeline, Refusals, no_suitable_node};

use crate::node_info::NodeInfo;
use crate::requirements::TaskRequirements;

/// A node seen from one task group: the node plus what is specific to the
/// group's service.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The node, with its live accounting.
    pub node: &'a NodeInfo,
    /// Active tasks of the group's service on the node.
    pub service_tasks: u32,
    /// Failures of the group's service (same spec version) on the node
    /// within the failure window.
    pub recent_failures: u32,
    /// `recent_failures` when it reaches the threshold (SwarmKit: 5 within
    /// 5 minutes), else 0: how strongly to avoid the node. Policies rank on
    /// it first.
    pub failure_penalty: u32,
}

/// A check of one node for one task group.
///
/// Filters are stateless and shared; the scheduler calls
/// [`Filter::enabled`] once per group and [`Filter::check`] per node.
pub trait Filter: Send + Sync {
    /// A short name, for reports.
    fn name(&self) -> &str;

    /// Whether this filter applies to tasks with these requirements
    /// (SwarmKit's `SetTask`). A disabled filter passes every node.
    fn enabled(&self, task: &TaskRequirements) -> bool;

    /// True when the node can take the task.
    fn check(&self, task: &TaskRequirements, candidate: &Candidate<'_>) -> bool;

    /// Why `nodes` nodes were refused, e.g. `insufficient resources on 2 nodes`.
    fn explain(&self, nodes: usize) -> String;
}

/// `1 node`, `2 nodes`.
pub(crate) fn nodes_phrase(n: usize) -> String {
    if n == 1 {
        "1 node".to_string()
    } else {
        format!("{n} nodes")
    }
}
