//! Cluster specs.

use super::{Result, fail, labels, non_negative};
use crate::defaults::MIN_NODE_CERT_EXPIRY;
use crate::v1::ClusterSpec;

/// Checks a cluster spec. Zero values mean "the default". Field paths start
/// at `spec`.
pub fn validate_cluster_spec(spec: &ClusterSpec) -> Result {
    if let Some(a) = &spec.annotations {
        labels("spec.annotations.labels", &a.labels)?;
    }
    if let Some(d) = &spec.dispatcher {
        non_negative(
            "spec.dispatcher.heartbeat_period",
            d.heartbeat_period.as_ref(),
        )?;
    }
    if let Some(r) = &spec.raft
        && (r.election_tick != 0 || r.heartbeat_tick != 0)
    {
        let hb = if r.heartbeat_tick == 0 {
            1
        } else {
            r.heartbeat_tick
        };
        let el = if r.election_tick == 0 {
            10
        } else {
            r.election_tick
        };
        if el <= hb {
            return fail(
                "spec.raft.election_tick",
                format!("{el} must be greater than the heartbeat tick {hb}"),
            );
        }
    }
    if let Some(ca) = &spec.ca_config {
        non_negative(
            "spec.ca_config.node_cert_expiry",
            ca.node_cert_expiry.as_ref(),
        )?;
        if let Some(d) = &ca.node_cert_expiry {
            let zero = d.seconds == 0 && d.nanos == 0;
            let short = d.to_std().is_ok_and(|d| d < MIN_NODE_CERT_EXPIRY);
            if !zero && short {
                return fail("spec.ca_config.node_cert_expiry", "must be at least 1 hour");
            }
        }
        if ca.signing_ca_cert.is_empty() != ca.signing_ca_key.is_empty() {
            return fail(
                "spec.ca_config.signing_ca_key",
                "a signing CA certificate and its key must be given together",
            );
        }
        for (i, ext) in ca.external_cas.iter().enumerate() {
            if ext.url.is_empty() {
                return fail(
                    format!("spec.ca_config.external_cas[{i}].url"),
                    "a URL is required",
                );
            }
        }
    }
    Ok(())
}
