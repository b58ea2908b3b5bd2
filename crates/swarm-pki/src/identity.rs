//! Who a certificate says its holder is: node id (CN), role (OU) and
//! cluster id (O), read strictly from untrusted DER.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use swarm_api::v1::NodeRole;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::role::role_from_ou;

/// Why a certificate does not name a node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not a DER X.509 certificate (or trailing bytes after it).
    #[error("not a valid X.509 certificate: {0}")]
    Malformed(String),
    /// The subject lacks the attribute, has several, or it is not text.
    #[error("the certificate subject must have exactly one {0}")]
    Attribute(&'static str),
    /// The CN is not a node id.
    #[error("the certificate CN {0:?} is not a node id")]
    NodeId(String),
    /// The OU is neither `swarm-manager` nor `swarm-worker`.
    #[error("the certificate OU {0:?} is not a swarm role")]
    Role(String),
    /// The certificate is a CA certificate, not a node's.
    #[error("a CA certificate is not a node certificate")]
    IsCa,
}

/// The identity a node certificate carries.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node id (CN).
    pub node_id: String,
    /// The role (OU).
    pub role: NodeRole,
    /// The cluster id (O).
    pub cluster_id: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Serial number, hex.
    pub serial: String,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node_id", &self.node_id)
            .field("role", &self.role.as_str_name())
            .field("cluster_id", &self.cluster_id)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Reads the identity from a certificate (DER). Does not check the
    /// signature or validity: that is the TLS verifier's job.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let cert = parse_certificate(der)?;
        if cert.is_ca() {
            return Err(IdentityError::IsCa);
        }
        let subject = cert.subject();
        let node_id = single(subject, X509Name::iter_common_name, "CN")?;
        let ou = single(subject, X509Name::iter_organizational_unit, "OU")?;
        let cluster_id = single(subject, X509Name::iter_organization, "O")?;
        if !swarm_api::id::is_valid_id(node_id) {
            return Err(IdentityError::NodeId(node_id.to_string()));
        }
        let role = role_from_ou(ou).ok_or_else(|| IdentityError::Role(ou.to_string()))?;
        if cluster_id.is_empty() {
            return Err(IdentityError::Attribute("O"));
        }
        let validity = cert.validity();
        Ok(NodeIdentity {
            node_id: node_id.to_string(),
            role,
            cluster_id: cluster_id.to_string(),
            not_before: unix_to_system(validity.not_before.timestamp()),
            not_after: unix_to_system(validity.not_after.timestamp()),
            serial: hex(cert.raw_serial()),
        })
    }

    /// True when `now` is inside the validity period.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// The certificate's whole life.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO)
    }
}

/// Parses one DER certificate, refusing trailing bytes.
pub(crate) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, IdentityError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(IdentityError::Malformed("trailing bytes".into())),
        Err(e) => Err(IdentityError::Malformed(e.to_string())),
    }
}

fn single<'a, I>(
    name: &'a X509Name<'a>,
    iter: impl Fn(&'a X509Name<'a>) -> I,
    what: &'static str,
) -> Result<&'a str, IdentityError>
where
    I: Iterator<Item = &'a AttributeTypeAndValue<'a>>,
{
    let mut it = iter(name);
    let first = it.next().ok_or(IdentityError::Attribute(what))?;
    if it.next().is_some() {
        return Err(IdentityError::Attribute(what));
    }
    first.as_str().map_err(|_| IdentityError::Attribute(what))
}

/// Seconds since the epoch (possibly negative) as a `SystemTime`.
pub(crate) fn unix_to_system(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
