//! What a node or manager trusts: the cluster's root certificates (two of
//! them during a root rotation) and the cluster id every peer certificate
//! must carry. A [`ClusterTrust`] is a shared handle: replacing the roots
//! takes effect on the next handshake of every server and client built
//! from it, without a restart.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::identity::{IdentityError, NodeIdentity};
use crate::root::pem_encode;
use crate::tls::provider;

/// Largest root bundle read from a peer.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024;

/// Why a set of roots cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// No root given.
    #[error("no root CA certificate given")]
    NoRoots,
    /// A root could not be read or used as a trust anchor.
    #[error("invalid root CA certificate: {0}")]
    BadRoot(String),
    /// The bundle is larger than [`MAX_BUNDLE_BYTES`].
    #[error("root bundle of {0} bytes is too large")]
    TooLarge(usize),
    /// The cluster id is not valid.
    #[error("invalid cluster id {0:?}")]
    ClusterId(String),
}

/// Why a peer's certificate chain is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// No certificate.
    #[error("no certificate presented")]
    Empty,
    /// It does not chain to a trusted root, is expired, or is not valid
    /// for client/server authentication.
    #[error("certificate not trusted: {0}")]
    Untrusted(String),
    /// It chains, but does not name a node.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// It belongs to another cluster.
    #[error("certificate of cluster {found:?}, expected {expected:?}")]
    WrongCluster {
        /// The O of the certificate.
        found: String,
        /// This cluster's id.
        expected: String,
    },
}

pub(crate) struct TrustState {
    pub(crate) cluster_id: Arc<str>,
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) generation: u64,
    /// Client certificates: optional at the TLS layer (see `tls`).
    pub(crate) client_verifier: Arc<dyn ClientCertVerifier>,
    pub(crate) server_verifier: Arc<WebPkiServerVerifier>,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl TrustState {
    fn build(
        cluster_id: Arc<str>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, TrustError> {
        if roots.is_empty() {
            return Err(TrustError::NoRoots);
        }
        let mut store = RootCertStore::empty();
        for root in &roots {
            store
                .add(root.clone())
                .map_err(|e| TrustError::BadRoot(e.to_string()))?;
        }
        let store = Arc::new(store);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(store.clone(), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TrustError::BadRoot(e.to_string()))?;
        let server_verifier = WebPkiServerVerifier::builder_with_provider(store, provider())
            .build()
            .map_err(|e| TrustError::BadRoot(e.to_string()))?;
        Ok(TrustState {
            cluster_id,
            roots,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            client_verifier,
            server_verifier,
        })
    }

    /// Verifies a node's chain as a client certificate (chain, validity
    /// at `now`, usages) and that it names a node of this cluster.
    pub(crate) fn verify_node_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<NodeIdentity, ChainError> {
        let (leaf, intermediates) = chain.split_first().ok_or(ChainError::Empty)?;
        self.client_verifier
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|e| ChainError::Untrusted(e.to_string()))?;
        let identity = NodeIdentity::from_der(leaf)?;
        if *identity.cluster_id != *self.cluster_id {
            return Err(ChainError::WrongCluster {
                found: identity.cluster_id,
                expected: self.cluster_id.to_string(),
            });
        }
        Ok(identity)
    }
}

/// The roots and cluster id a node or manager trusts; a cheap-to-clone
/// shared handle.
#[derive(Clone)]
pub struct ClusterTrust {
    state: Arc<ArcSwap<TrustState>>,
}

impl fmt::Debug for ClusterTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.load();
        f.debug_struct("ClusterTrust")
            .field("cluster_id", &state.cluster_id)
            .field("roots", &state.roots.len())
            .finish()
    }
}

impl ClusterTrust {
    /// Trusts `roots` for cluster `cluster_id`.
    pub fn new(cluster_id: &str, roots: Vec<CertificateDer<'static>>) -> Result<Self, TrustError> {
        crate::issue::check_cluster_id(cluster_id)
            .map_err(|_| TrustError::ClusterId(cluster_id.to_string()))?;
        let state = TrustState::build(Arc::from(cluster_id), roots)?;
        Ok(ClusterTrust {
            state: Arc::new(ArcSwap::from_pointee(state)),
        })
    }

    /// Replaces the trusted roots (root rotation). Connections made after
    /// this use the new roots; open connections are re-checked on their
    /// next call by [`crate::auth::peer_identity`].
    pub fn set_roots(&self, roots: Vec<CertificateDer<'static>>) -> Result<(), TrustError> {
        let cluster_id = self.state.load().cluster_id.clone();
        let state = TrustState::build(cluster_id, roots)?;
        self.state.store(Arc::new(state));
        Ok(())
    }

    /// The trusted roots.
    pub fn roots(&self) -> Vec<CertificateDer<'static>> {
        self.state.load().roots.clone()
    }

    /// The trusted roots as a PEM bundle.
    pub fn roots_pem(&self) -> String {
        bundle_pem(&self.state.load().roots)
    }

    /// The cluster id peers must carry.
    pub fn cluster_id(&self) -> String {
        self.state.load().cluster_id.to_string()
    }

    /// Verifies a node certificate chain (leaf first) against the current
    /// roots at `now`, and returns the identity it carries.
    pub fn verify_node_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: std::time::SystemTime,
    ) -> Result<NodeIdentity, ChainError> {
        self.state.load().verify_node_chain(chain, unix_time(now))
    }

    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<TrustState>> {
        self.state.load()
    }
}

/// A `SystemTime` as rustls's time (before the epoch reads as the epoch).
pub(crate) fn unix_time(t: std::time::SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default())
}

/// Certificates as one PEM bundle.
pub fn bundle_pem(certs: &[CertificateDer<'_>]) -> String {
    certs.iter().map(|c| pem_encode("CERTIFICATE", c)).collect()
}

/// Reads a PEM bundle of certificates from untrusted bytes.
pub fn parse_bundle_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    if pem.len() > MAX_BUNDLE_BYTES {
        return Err(TrustError::TooLarge(pem.len()));
    }
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrustError::BadRoot(e.to_string()))?;
    if certs.is_empty() {
        return Err(TrustError::NoRoots);
    }
    Ok(certs)
}
