//! The running cluster CA: signs node certificates with the current root
//! and drives a root rotation.
//!
//! # Root rotation
//!
//! 1. [`ClusterCa::start_rotation`] with a new root: the CA signs with the
//!    new root from now on, and every certificate it issues carries the new
//!    root *cross-signed by the old one* as an intermediate. Peers that
//!    trust only the old root still accept the new certificates (leaf →
//!    cross-signed → old root); the trust handle holds both roots, so old
//!    certificates keep working too.
//! 2. The manager re-issues every node (nodes renew; [`ClusterCa::needs_reissue`]
//!    tells whose certificate is still from the old root).
//! 3. [`ClusterCa::finish_rotation`]: only the new root is trusted;
//!    certificates from the old root are refused at the next handshake and
//!    on the next call of an open connection. Join tokens must then be
//!    re-bound to the new root ([`crate::JoinTokens::with_root_digest`]).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rcgen::Issuer;
use rustls::pki_types::CertificateDer;
use swarm_api::v1::NodeRole;

use crate::clock::{SharedClock, system_clock};
use crate::csr::{NodeKey, verify_csr};
use crate::identity::parse_certificate;
use crate::issue::{
    IssueError, IssuedCertificate, NodeCertSpec, NodeCertValidity, check_cluster_id,
    sign_node_certificate,
};
use crate::root::{RootCa, RootError};
use crate::signer::RcgenSigner;
use crate::trust::{ClusterTrust, TrustError, bundle_pem};

/// Why a CA operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// Issuance failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// A root could not be used.
    #[error(transparent)]
    Root(#[from] RootError),
    /// The trust handle refused the roots.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// No rotation to finish.
    #[error("no root rotation in progress")]
    NoRotation,
    /// The stored CA state is incomplete or inconsistent.
    #[error("invalid stored CA state: {0}")]
    Stored(String),
}

/// A rotation in progress.
#[derive(Clone)]
pub struct Rotation {
    /// The root being replaced.
    pub old: RootCa,
    /// The root being rotated to.
    pub new: RootCa,
    /// `new` signed by `old`.
    pub cross_signed: CertificateDer<'static>,
}

struct CaState {
    signing: RootCa,
    issuer: Issuer<'static, RcgenSigner>,
    intermediates: Vec<CertificateDer<'static>>,
    rotation: Option<Rotation>,
}

impl CaState {
    fn stable(root: RootCa) -> Result<Self, CaError> {
        Ok(CaState {
            issuer: root.issuer()?,
            signing: root,
            intermediates: Vec::new(),
            rotation: None,
        })
    }

    fn rotating(rotation: Rotation) -> Result<Self, CaError> {
        Ok(CaState {
            issuer: rotation.new.issuer()?,
            signing: rotation.new.clone(),
            intermediates: vec![rotation.cross_signed.clone()],
            rotation: Some(rotation),
        })
    }

    fn trusted_roots(&self) -> Vec<CertificateDer<'static>> {
        match &self.rotation {
            Some(r) => vec![r.old.certificate().clone(), r.new.certificate().clone()],
            None => vec![self.signing.certificate().clone()],
        }
    }
}

/// The cluster CA. Cheap to share (`Arc`); all methods take `&self`.
pub struct ClusterCa {
    cluster_id: String,
    validity: ArcSwap<NodeCertValidity>,
    state: ArcSwap<CaState>,
    trust: ClusterTrust,
    clock: SharedClock,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.load();
        f.debug_struct("ClusterCa")
            .field("cluster_id", &self.cluster_id)
            .field("root", &state.signing)
            .field("rotating", &state.rotation.is_some())
            .finish()
    }
}

impl ClusterCa {
    /// A CA for cluster `cluster_id` signing with `root`, on the system
    /// clock, issuing 90-day certificates.
    pub fn new(cluster_id: &str, root: RootCa) -> Result<Self, CaError> {
        Self::with_clock(cluster_id, root, system_clock())
    }

    /// Same, reading time from `clock`.
    pub fn with_clock(cluster_id: &str, root: RootCa, clock: SharedClock) -> Result<Self, CaError> {
        check_cluster_id(cluster_id)?;
        let state = CaState::stable(root)?;
        let trust = ClusterTrust::new(cluster_id, state.trusted_roots())?;
        Ok(ClusterCa {
            cluster_id: cluster_id.to_string(),
            validity: ArcSwap::from_pointee(NodeCertValidity::default()),
            state: ArcSwap::from_pointee(state),
            trust,
            clock,
        })
    }

    /// The cluster id (the O of every certificate).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The clock the CA reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Sets the validity of certificates issued from now on.
    pub fn set_validity(&self, validity: NodeCertValidity) {
        self.validity.store(Arc::new(validity));
    }

    /// The validity of issued certificates.
    pub fn validity(&self) -> NodeCertValidity {
        **self.validity.load()
    }

    /// The root that signs now (the new one during a rotation).
    pub fn signing_root(&self) -> RootCa {
        self.state.load().signing.clone()
    }

    /// The rotation in progress, if any.
    pub fn rotation(&self) -> Option<Rotation> {
        self.state.load().rotation.clone()
    }

    /// The roots to trust now: one, or old and new during a rotation.
    pub fn trusted_roots(&self) -> Vec<CertificateDer<'static>> {
        self.state.load().trusted_roots()
    }

    /// The trusted roots as PEM: what `GetRootCaCertificate` serves.
    pub fn root_bundle_pem(&self) -> String {
        bundle_pem(&self.trusted_roots())
    }

    /// The trust handle that follows this CA: give it to the manager's
    /// server and client configs, and rotations apply to them at once.
    pub fn trust(&self) -> ClusterTrust {
        self.trust.clone()
    }

    /// Signs a certificate for the key in `csr` (PEM or DER, untrusted),
    /// for `node_id` with `role`. The CSR's subject is ignored.
    pub fn issue(
        &self,
        csr: &[u8],
        node_id: &str,
        role: NodeRole,
    ) -> Result<IssuedCertificate, CaError> {
        let verified = verify_csr(csr).map_err(IssueError::from)?;
        self.sign(&verified, node_id, role)
    }

    /// Signs a certificate for a key held in this process (bootstrapping
    /// the first manager, tests).
    pub fn issue_for_key(
        &self,
        key: &NodeKey,
        node_id: &str,
        role: NodeRole,
    ) -> Result<IssuedCertificate, CaError> {
        self.sign(key.key_pair(), node_id, role)
    }

    fn sign(
        &self,
        key: &impl rcgen::PublicKeyData,
        node_id: &str,
        role: NodeRole,
    ) -> Result<IssuedCertificate, CaError> {
        let state = self.state.load();
        let spec = NodeCertSpec {
            node_id,
            role,
            cluster_id: &self.cluster_id,
            now: self.clock.now(),
            validity: self.validity(),
            root_not_after: state.signing.not_after(),
        };
        Ok(sign_node_certificate(
            &spec,
            key,
            &state.issuer,
            &state.intermediates,
        )?)
    }

    /// Resumes a rotation read from the store, keeping its cross-signed
    /// certificate (so every manager presents the same one). The
    /// certificate must be `new`'s key signed by `old`.
    pub(crate) fn resume_rotation(
        &self,
        old: RootCa,
        new: RootCa,
        cross_signed: CertificateDer<'static>,
    ) -> Result<(), CaError> {
        let cross = parse_certificate(&cross_signed)
            .map_err(|e| CaError::Stored(format!("cross-signed certificate: {e}")))?;
        let new_parsed =
            parse_certificate(new.certificate()).map_err(|e| CaError::Stored(e.to_string()))?;
        let old_parsed =
            parse_certificate(old.certificate()).map_err(|e| CaError::Stored(e.to_string()))?;
        if cross.public_key().raw != new_parsed.public_key().raw
            || cross
                .verify_signature(Some(old_parsed.public_key()))
                .is_err()
        {
            return Err(CaError::Stored(
                "the cross-signed certificate is not the new root signed by the old".into(),
            ));
        }
        let state = CaState::rotating(Rotation {
            old,
            new,
            cross_signed,
        })?;
        self.trust.set_roots(state.trusted_roots())?;
        self.state.store(Arc::new(state));
        Ok(())
    }

    /// Starts rotating to `new_root` (see the module docs). Starting again
    /// during a rotation replaces the target root; the old root stays the
    /// one being rotated from.
    pub fn start_rotation(&self, new_root: RootCa) -> Result<(), CaError> {
        let current = self.state.load();
        let old = match &current.rotation {
            Some(r) => r.old.clone(),
            None => current.signing.clone(),
        };
        let cross_signed = old.cross_sign(&new_root)?;
        let state = CaState::rotating(Rotation {
            old,
            new: new_root,
            cross_signed,
        })?;
        self.trust.set_roots(state.trusted_roots())?;
        self.state.store(Arc::new(state));
        Ok(())
    }

    /// Ends the rotation: only the new root is trusted from now on.
    /// Returns the new root.
    pub fn finish_rotation(&self) -> Result<RootCa, CaError> {
        let current = self.state.load();
        let rotation = current.rotation.as_ref().ok_or(CaError::NoRotation)?;
        let state = CaState::stable(rotation.new.clone())?;
        let new_root = rotation.new.clone();
        self.trust.set_roots(vec![new_root.certificate().clone()])?;
        self.state.store(Arc::new(state));
        Ok(new_root)
    }

    /// True when the certificate (leaf, DER) was not issued by the root
    /// that signs now: the node must renew (during or after a rotation).
    pub fn needs_reissue(&self, leaf: &[u8]) -> bool {
        let Ok(cert) = parse_certificate(leaf) else {
            return true;
        };
        let state = self.state.load();
        let Ok(root) = parse_certificate(state.signing.certificate()) else {
            return true;
        };
        if cert.issuer().as_raw() != root.subject().as_raw() {
            return true;
        }
        // Same name: check the signature against the signing root's key.
        cert.verify_signature(Some(root.public_key())).is_err()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;
    use crate::clock::ManualClock;
    use crate::identity::NodeIdentity;
    use crate::role::{MANAGER_OU, WORKER_OU};

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn ca_at(now: SystemTime) -> (ClusterCa, ManualClock) {
        let clock = ManualClock::new(now);
        let root = RootCa::generate(now).unwrap();
        (
            ClusterCa::with_clock("cluster1", root, Arc::new(clock.clone())).unwrap(),
            clock,
        )
    }

    fn id() -> String {
        swarm_api::id::new_id()
    }

    #[test]
    fn the_ca_decides_the_subject_not_the_csr() {
        let (ca, _) = ca_at(t0());
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "evil");
        dn.push(DnType::OrganizationName, "othercluster");
        dn.push(DnType::OrganizationalUnitName, MANAGER_OU);
        params.distinguished_name = dn;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let node = id();
        let issued = ca.issue(csr.as_bytes(), &node, NodeRole::Worker).unwrap();
        let got = &issued.identity;
        assert_eq!(got.node_id, node);
        assert_eq!(got.role, NodeRole::Worker);
        assert_eq!(got.cluster_id, "cluster1");
        let cert = parse_certificate(&issued.chain[0]).unwrap();
        assert!(!cert.is_ca());
        let ous: Vec<_> = cert
            .subject()
            .iter_organizational_unit()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(ous, [WORKER_OU]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && eku.server_auth);
        // The certificate carries the CSR's key.
        let verified = crate::csr::verify_csr(csr.as_bytes()).unwrap();
        assert_eq!(cert.public_key().raw, verified.public_key_der());
    }

    #[test]
    fn validity_is_90_days_by_default_at_least_an_hour_and_capped_by_the_root() {
        let (ca, clock) = ca_at(t0());
        let key = NodeKey::generate().unwrap();
        let issued = ca.issue_for_key(&key, &id(), NodeRole::Manager).unwrap();
        assert_eq!(issued.identity.not_after, t0() + 90 * DAY);
        assert_eq!(
            issued.identity.not_before,
            t0() - crate::root::CLOCK_SKEW_BACKDATE
        );

        assert!(NodeCertValidity::new(Duration::from_secs(3599)).is_err());
        ca.set_validity(NodeCertValidity::new(Duration::from_secs(3600)).unwrap());
        let issued = ca.issue_for_key(&key, &id(), NodeRole::Manager).unwrap();
        assert_eq!(issued.identity.not_after, t0() + Duration::from_secs(3600));

        // Near the end of the root's life, certificates end with it.
        ca.set_validity(NodeCertValidity::default());
        let root_end = ca.signing_root().not_after();
        clock.set(root_end - DAY);
        let issued = ca.issue_for_key(&key, &id(), NodeRole::Worker).unwrap();
        assert_eq!(issued.identity.not_after, root_end);
        // Past it, nothing is issued.
        clock.set(root_end + DAY);
        assert!(matches!(
            ca.issue_for_key(&key, &id(), NodeRole::Worker),
            Err(CaError::Issue(IssueError::RootNotValid))
        ));
    }

    #[test]
    fn bad_requests_are_typed_errors_and_issue_nothing() {
        let (ca, _) = ca_at(t0());
        let key = NodeKey::generate().unwrap();
        let csr = key.csr_pem().unwrap();
        assert!(matches!(
            ca.issue(csr.as_bytes(), "not-an-id", NodeRole::Worker),
            Err(CaError::Issue(IssueError::NodeId(_)))
        ));
        assert!(matches!(
            ca.issue(b"garbage", &id(), NodeRole::Worker),
            Err(CaError::Issue(IssueError::Csr(_)))
        ));
        assert!(ClusterCa::new("", ca.signing_root()).is_err());
        assert!(ClusterCa::new("has space", ca.signing_root()).is_err());
    }

    #[test]
    fn roots_load_from_pem_and_refuse_a_foreign_key() {
        let root = RootCa::generate(t0()).unwrap();
        let pem = root.certificate_pem();
        let key = root.key_pem().unwrap().to_string();
        let loaded = RootCa::from_pem(pem.as_bytes(), &key).unwrap();
        assert_eq!(loaded.digest(), root.digest());
        assert_eq!(
            loaded
                .not_after()
                .duration_since(loaded.not_before())
                .unwrap(),
            swarm_api::defaults::ROOT_CA_EXPIRY + crate::root::CLOCK_SKEW_BACKDATE
        );
        let other = RootCa::generate(t0()).unwrap();
        assert!(matches!(
            RootCa::from_pem(pem.as_bytes(), other.key_pem().unwrap()),
            Err(RootError::KeyMismatch)
        ));
        // A node certificate is not a root.
        let (ca, _) = ca_at(t0());
        let leaf = ca
            .issue_for_key(&NodeKey::generate().unwrap(), &id(), NodeRole::Worker)
            .unwrap();
        let leaf_pem = crate::root::pem_encode("CERTIFICATE", &leaf.chain[0]);
        assert!(matches!(
            RootCa::from_pem(leaf_pem.as_bytes(), &key),
            Err(RootError::NotCa) | Err(RootError::KeyMismatch)
        ));
    }

    /// An external signer: here a local key behind the trait, counting
    /// signatures, as an HSM binding would look.
    #[derive(Debug)]
    struct CountingSigner {
        inner: crate::signer::LocalSigner,
        count: std::sync::atomic::AtomicUsize,
    }

    impl crate::signer::CaSigner for CountingSigner {
        fn algorithm(&self) -> crate::signer::SignerAlgorithm {
            self.inner.algorithm()
        }
        fn public_key(&self) -> &[u8] {
            self.inner.public_key()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::signer::SignerError> {
            self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.sign(message)
        }
    }

    #[test]
    fn an_external_signer_signs_every_certificate() {
        let root = RootCa::generate(t0()).unwrap();
        let signer = Arc::new(CountingSigner {
            inner: crate::signer::LocalSigner::from_pem(root.key_pem().unwrap()).unwrap(),
            count: Default::default(),
        });
        let external = RootCa::with_signer(root.certificate().clone(), signer.clone()).unwrap();
        assert!(external.key_pem().is_none());
        let ca =
            ClusterCa::with_clock("cluster1", external, Arc::new(ManualClock::new(t0()))).unwrap();
        let issued = ca
            .issue_for_key(&NodeKey::generate().unwrap(), &id(), NodeRole::Worker)
            .unwrap();
        assert_eq!(signer.count.load(std::sync::atomic::Ordering::SeqCst), 1);
        ca.trust().verify_node_chain(&issued.chain, t0()).unwrap();
        // A signer whose key is not the certificate's is refused.
        let wrong = Arc::new(crate::signer::LocalSigner::generate().unwrap());
        assert!(matches!(
            RootCa::with_signer(root.certificate().clone(), wrong),
            Err(RootError::KeyMismatch)
        ));
    }

    #[test]
    fn rotation_cross_signs_then_drops_the_old_root() {
        let (ca, _) = ca_at(t0());
        let key = NodeKey::generate().unwrap();
        let old_leaf = ca.issue_for_key(&key, &id(), NodeRole::Worker).unwrap();
        let old_root = ca.signing_root();
        let old_only = ClusterTrust::new("cluster1", vec![old_root.certificate().clone()]).unwrap();

        let new_root = RootCa::generate(t0()).unwrap();
        ca.start_rotation(new_root.clone()).unwrap();
        assert_eq!(ca.trusted_roots().len(), 2);
        assert!(ca.needs_reissue(&old_leaf.chain[0]));
        let new_leaf = ca.issue_for_key(&key, &id(), NodeRole::Worker).unwrap();
        assert!(!ca.needs_reissue(&new_leaf.chain[0]));
        assert_eq!(new_leaf.chain.len(), 2, "leaf + cross-signed root");
        // Peers that only know the old root accept the new certificate
        // through the cross-signed intermediate; the CA's trust accepts both.
        old_only.verify_node_chain(&new_leaf.chain, t0()).unwrap();
        ca.trust().verify_node_chain(&old_leaf.chain, t0()).unwrap();
        ca.trust().verify_node_chain(&new_leaf.chain, t0()).unwrap();
        // The cross-signed certificate is the new root's key under the old.
        let cross = parse_certificate(&new_leaf.chain[1]).unwrap();
        let new_parsed = parse_certificate(new_root.certificate()).unwrap();
        assert_eq!(cross.public_key().raw, new_parsed.public_key().raw);
        assert!(cross.is_ca());

        let finished = ca.finish_rotation().unwrap();
        assert_eq!(finished.digest(), new_root.digest());
        assert_eq!(ca.trusted_roots(), vec![new_root.certificate().clone()]);
        assert!(ca.trust().verify_node_chain(&old_leaf.chain, t0()).is_err());
        ca.trust().verify_node_chain(&new_leaf.chain, t0()).unwrap();
        let after = ca.issue_for_key(&key, &id(), NodeRole::Worker).unwrap();
        assert_eq!(after.chain.len(), 1);
        assert!(matches!(ca.finish_rotation(), Err(CaError::NoRotation)));
    }

    #[test]
    fn restarting_a_rotation_keeps_the_original_old_root() {
        let (ca, _) = ca_at(t0());
        let old = ca.signing_root();
        ca.start_rotation(RootCa::generate(t0()).unwrap()).unwrap();
        let second = RootCa::generate(t0()).unwrap();
        ca.start_rotation(second.clone()).unwrap();
        let rotation = ca.rotation().unwrap();
        assert_eq!(rotation.old.digest(), old.digest());
        assert_eq!(rotation.new.digest(), second.digest());
        assert_eq!(
            ca.trusted_roots(),
            vec![old.certificate().clone(), second.certificate().clone()]
        );
    }

    #[test]
    fn identities_read_strictly() {
        // A time with a fraction of a second: certificates keep seconds.
        let (ca, _) = ca_at(t0() + Duration::from_millis(1500));
        let issued = ca
            .issue_for_key(&NodeKey::generate().unwrap(), &id(), NodeRole::Manager)
            .unwrap();
        let identity = NodeIdentity::from_der(&issued.chain[0]).unwrap();
        assert_eq!(identity, issued.identity);
        assert_eq!(
            identity.lifetime(),
            90 * DAY + crate::root::CLOCK_SKEW_BACKDATE
        );
        assert!(identity.is_valid_at(t0()));
        assert!(!identity.is_valid_at(t0() + 91 * DAY));
        // A root is not a node; trailing bytes are refused.
        assert!(NodeIdentity::from_der(ca.signing_root().certificate()).is_err());
        let mut trailing = issued.chain[0].to_vec();
        trailing.push(0);
        assert!(NodeIdentity::from_der(&trailing).is_err());
    }
}
