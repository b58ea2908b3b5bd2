//! Node specs.

use super::{Result, fail, known, labels};
use crate::v1::{NodeAvailability, NodeRole, NodeSpec};

/// Checks a node spec. Field paths start at `spec`.
pub fn validate_node_spec(spec: &NodeSpec) -> Result {
    known::<NodeRole>("spec.desired_role", spec.desired_role)?;
    known::<NodeAvailability>("spec.availability", spec.availability)?;
    if let Some(a) = &spec.annotations {
        labels("spec.annotations.labels", &a.labels)?;
        if a.name.len() > 255 {
            return fail("spec.annotations.name", "longer than 255 characters");
        }
    }
    Ok(())
}
