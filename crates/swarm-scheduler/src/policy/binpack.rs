//! Binpack: fill the most-used node that still fits.

use std::cmp::Reverse;

use super::Policy;
use crate::filter::Candidate;
use crate::requirements::TaskRequirements;

/// Fills the most-used fitting node first, leaving other nodes empty for
/// large tasks (Docker's classic `binpack` strategy).
///
/// Use is the mean of the reserved CPU and memory fractions over the
/// dimensions the node advertises, then the number of active tasks (so
/// tasks without reservations pile onto one node). Nodes the service keeps
/// failing on are avoided first, as with [`super::Spread`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Binpack;

/// Parts per million of the node's advertised CPU and memory that are
/// reserved (0 when it advertises neither).
pub(crate) fn usage_ppm(c: &Candidate<'_>) -> u32 {
    let r = c.node.resources();
    let mut sum = 0.0f64;
    let mut dims = 0u32;
    if r.total_nano_cpus() > 0 {
        sum += r.reserved_nano_cpus() as f64 / r.total_nano_cpus() as f64;
        dims += 1;
    }
    if r.total_memory_bytes() > 0 {
        sum += r.reserved_memory_bytes() as f64 / r.total_memory_bytes() as f64;
        dims += 1;
    }
    if dims == 0 {
        return 0;
    }
    // Clamped to 0..=1e6: the cast cannot wrap.
    ((sum / f64::from(dims)).clamp(0.0, 1.0) * 1e6) as u32
}

impl Policy for Binpack {
    type Rank = (u32, Reverse<u32>, Reverse<u32>);

    fn name(&self) -> &str {
        "binpack"
    }

    #[inline]
    fn rank(&self, _task: &TaskRequirements, c: &Candidate<'_>) -> Self::Rank {
        (
            c.failure_penalty,
            Reverse(usage_ppm(c)),
            Reverse(c.node.active_tasks()),
        )
    }
}
