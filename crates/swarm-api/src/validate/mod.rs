//! Spec validation: every rule a spec must meet before the cluster accepts
//! it, with an error that names the offending field and says why.
//!
//! The checks here need no cluster state. Checks that do (a name already
//! taken, a network that does not exist, a constraint's syntax, which the
//! scheduler owns) are made by the manager on top of these.

mod cluster;
mod name;
mod network;
mod node;
mod secret;
mod service;

pub use cluster::validate_cluster_spec;
pub use name::validate_name;
pub use network::validate_network_spec;
pub use node::validate_node_spec;
pub use secret::{validate_config_spec, validate_secret_spec};
pub use service::validate_service_spec;

use std::collections::BTreeMap;

use crate::EnumName;
use crate::v1::Duration;

/// A spec field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    /// Dotted path of the field, e.g. `spec.endpoint.ports[1].target_port`.
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub reason: String,
}

/// Result of a validation.
pub type Result<T = ()> = std::result::Result<T, ValidationError>;

pub(crate) fn fail<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T> {
    Err(ValidationError {
        field: field.into(),
        reason: reason.into(),
    })
}

/// A duration field, when set, must not be negative or malformed.
pub(crate) fn non_negative(field: &str, d: Option<&Duration>) -> Result {
    match d {
        Some(d) if d.is_negative() => {
            fail(field, format!("must not be negative (got {}s)", d.seconds))
        }
        Some(d) if !(0..=999_999_999).contains(&d.nanos) => {
            fail(field, format!("nanoseconds {} out of range", d.nanos))
        }
        _ => Ok(()),
    }
}

/// An enum field must hold one of the enum's values.
pub(crate) fn known<E: EnumName>(field: &str, raw: i32) -> Result {
    match E::name_of(raw) {
        Some(_) => Ok(()),
        None => fail(
            field,
            format!(
                "unknown value {raw}, expected one of: {}",
                E::names().join(", ")
            ),
        ),
    }
}

/// Label keys must be non-empty.
pub(crate) fn labels(field: &str, labels: &BTreeMap<String, String>) -> Result {
    if labels.keys().any(|k| k.trim().is_empty()) {
        return fail(field, "label keys must not be empty");
    }
    Ok(())
}
