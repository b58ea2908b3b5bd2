//! Placement policies: which of the nodes that pass the filters gets the
//! next task of a group.
//!
//! The scheduler keeps the candidate nodes of each spread branch in a heap
//! ordered by [`Policy::rank`] (lowest first) and gives each task to the
//! best node, then ranks that node again: a policy only has to say how good
//! one node is *now*. Ties are broken by a hash of the node id, so the same
//! input always gives the same placement.
//!
//! Shipped: [`Spread`] (SwarmKit's default) and [`Binpack`]. A policy is one
//! small type; this one places tasks on the nodes with the most free memory:
//!
//! ```
//! use std::cmp::Reverse;
//! use swarm_scheduler::{Candidate, Policy, TaskRequirements};
//!
//! /// Most free memory first; avoid nodes where the service keeps failing.
//! struct MostFreeMemory;
//!
//! impl Policy for MostFreeMemory {
//!     type Rank = (u32, Reverse<i64>);
//!
//!     fn name(&self) -> &str {
//!         "most-free-memory"
//!     }
//!
//!     fn rank(&self, _task: &TaskRequirements, c: &Candidate<'_>) -> Self::Rank {
//!         (c.failure_penalty, Reverse(c.node.resources().available_memory_bytes()))
//!     }
//! }
//!
//! let scheduler = swarm_scheduler::ClusterScheduler::builder()
//!     .policy(MostFreeMemory)
//!     .build();
//! assert_eq!(scheduler.policy().name(), "most-free-memory");
//! ```

mod binpack;
mod spread;

pub use binpack::Binpack;
pub use spread::Spread;

use crate::filter::Candidate;
use crate::requirements::TaskRequirements;

/// Ranks candidate nodes for a task group: the lowest rank is chosen first.
///
/// Spread preferences (`spread` over labels) are applied by the scheduler
/// before ranking, whatever the policy: they divide the tasks among label
/// values, and the policy picks nodes inside each value.
pub trait Policy: Send + Sync + 'static {
    /// The rank of a node; any ordered, copyable key.
    type Rank: Ord + Copy + Send;

    /// A short name, for reports.
    fn name(&self) -> &str;

    /// How good this node is for the next task of the group (lower is better).
    fn rank(&self, task: &TaskRequirements, candidate: &Candidate<'_>) -> Self::Rank;
}
