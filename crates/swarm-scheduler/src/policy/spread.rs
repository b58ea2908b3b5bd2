//! SwarmKit's default ranking.

use super::Policy;
use crate::filter::Candidate;
use crate::requirements::TaskRequirements;

/// SwarmKit's ranking: avoid nodes where the service (this spec version)
/// failed repeatedly (5 failures within 5 minutes by default, more failures
/// ranked worse); then fewer active tasks of this service; then fewer
/// active tasks in total.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread;

impl Policy for Spread {
    type Rank = (u32, u32, u32);

    fn name(&self) -> &str {
        "spread"
    }

    #[inline]
    fn rank(&self, _task: &TaskRequirements, c: &Candidate<'_>) -> Self::Rank {
        (c.failure_penalty, c.service_tasks, c.node.active_tasks())
    }
}
