//! What a node certificate says, decided by the CA alone: the pure part
//! of issuance (no clock, no I/O: `now` and the keys are passed in).

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls::pki_types::CertificateDer;
use swarm_api::v1::NodeRole;

use crate::identity::NodeIdentity;
use crate::role::role_ou;
use crate::root::{CLOCK_SKEW_BACKDATE, pem_encode, random_serial};
use crate::signer::RcgenSigner;

/// Why a certificate was not issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The requested validity is below the minimum (1 hour).
    #[error("node certificate validity {0:?} is below the minimum of 1 hour")]
    ValidityTooShort(Duration),
    /// The node id is not a 25-character base-36 id.
    #[error("{0:?} is not a node id")]
    NodeId(String),
    /// The cluster id is empty or not printable.
    #[error("invalid cluster id {0:?}")]
    ClusterId(String),
    /// The CSR was refused.
    #[error(transparent)]
    Csr(#[from] crate::csr::CsrError),
    /// The signing root cannot issue now (expired, or `now` out of range).
    #[error("the signing root CA cannot issue at this time")]
    RootNotValid,
    /// The signer or certificate encoder failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The validity of issued node certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCertValidity(Duration);

impl NodeCertValidity {
    /// A validity of `d`, refused below one hour.
    pub fn new(d: Duration) -> Result<Self, IssueError> {
        if d < swarm_api::defaults::MIN_NODE_CERT_EXPIRY {
            return Err(IssueError::ValidityTooShort(d));
        }
        Ok(NodeCertValidity(d))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl Default for NodeCertValidity {
    /// 90 days, as SwarmKit.
    fn default() -> Self {
        NodeCertValidity(swarm_api::defaults::NODE_CERT_EXPIRY)
    }
}

/// A signed node certificate with the chain a node presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// Leaf first, then intermediates (the cross-signed root during a
    /// rotation).
    pub chain: Vec<CertificateDer<'static>>,
    /// What the leaf says.
    pub identity: NodeIdentity,
}

impl IssuedCertificate {
    /// The chain as PEM (leaf first).
    pub fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem_encode("CERTIFICATE", c))
            .collect()
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => std::time::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// Checks a cluster id can be written as the O of a certificate.
pub(crate) fn check_cluster_id(cluster_id: &str) -> Result<(), IssueError> {
    let ok = !cluster_id.is_empty()
        && cluster_id.len() <= 64
        && cluster_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(IssueError::ClusterId(cluster_id.to_string()))
    }
}

/// What to sign.
pub(crate) struct NodeCertSpec<'a> {
    pub(crate) node_id: &'a str,
    pub(crate) role: NodeRole,
    pub(crate) cluster_id: &'a str,
    pub(crate) now: SystemTime,
    pub(crate) validity: NodeCertValidity,
    /// End of the signing root's validity: the leaf never outlives it.
    pub(crate) root_not_after: SystemTime,
}

/// Builds and signs a node certificate for `public_key`.
pub(crate) fn sign_node_certificate(
    spec: &NodeCertSpec<'_>,
    public_key: &impl PublicKeyData,
    issuer: &Issuer<'_, RcgenSigner>,
    intermediates: &[CertificateDer<'static>],
) -> Result<IssuedCertificate, IssueError> {
    if !swarm_api::id::is_valid_id(spec.node_id) {
        return Err(IssueError::NodeId(spec.node_id.to_string()));
    }
    check_cluster_id(spec.cluster_id)?;
    let not_before = spec
        .now
        .checked_sub(CLOCK_SKEW_BACKDATE)
        .ok_or(IssueError::RootNotValid)?;
    let not_after = spec
        .now
        .checked_add(spec.validity.get())
        .ok_or(IssueError::RootNotValid)?
        .min(spec.root_not_after);
    if not_after <= spec.now {
        return Err(IssueError::RootNotValid);
    }
    let ou = role_ou(spec.role);
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, spec.cluster_id);
    dn.push(DnType::OrganizationalUnitName, ou);
    dn.push(DnType::CommonName, spec.node_id);
    params.distinguished_name = dn;
    let san = |s: &str| {
        s.try_into()
            .map(SanType::DnsName)
            .map_err(|e: rcgen::Error| IssueError::Signing(e.to_string()))
    };
    params.subject_alt_names = vec![san(ou)?, san(spec.node_id)?];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let serial = random_serial();
    let serial_hex = crate::identity::hex(&serial.to_bytes());
    params.serial_number = Some(serial);
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(public_key, issuer)
        .map_err(|e| IssueError::Signing(e.to_string()))?;
    let leaf = cert.der().clone();
    // What the certificate says, as `NodeIdentity::from_der` reads it
    // (certificate times have whole seconds): built, not parsed back; the
    // CA tests check that the two agree.
    let identity = NodeIdentity {
        node_id: spec.node_id.to_string(),
        role: spec.role,
        cluster_id: spec.cluster_id.to_string(),
        not_before: whole_seconds(not_before),
        not_after: whole_seconds(not_after),
        serial: serial_hex,
    };
    let mut chain = Vec::with_capacity(1 + intermediates.len());
    chain.push(leaf);
    chain.extend(intermediates.iter().cloned());
    Ok(IssuedCertificate { chain, identity })
}
