//! A node's key and certificate chain, and the shared handle servers and
//! clients read them from at every handshake (so a renewed certificate is
//! used without restarting anything).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::csr::NodeKey;
use crate::identity::{IdentityError, NodeIdentity, parse_certificate};
use crate::issue::IssuedCertificate;
use crate::trust::{TrustError, bundle_pem, parse_bundle_pem};

/// Why a key and chain do not make credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// No certificate in the chain.
    #[error("empty certificate chain")]
    EmptyChain,
    /// The chain could not be read.
    #[error("invalid certificate chain: {0}")]
    Chain(String),
    /// The leaf does not name a node.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The key is not the leaf's.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// The key cannot be used for TLS.
    #[error("unusable private key: {0}")]
    Key(String),
    /// The new credentials are for another cluster than the handle's.
    #[error("credentials of cluster {found:?} cannot replace those of {expected:?}")]
    ClusterMismatch {
        /// Cluster of the new credentials.
        found: String,
        /// Cluster of the current ones.
        expected: String,
    },
}

impl From<TrustError> for CredentialsError {
    fn from(e: TrustError) -> Self {
        CredentialsError::Chain(e.to_string())
    }
}

/// A node's private key with its certificate chain (leaf first).
pub struct NodeCredentials {
    key: NodeKey,
    chain: Vec<CertificateDer<'static>>,
    identity: NodeIdentity,
    certified: Arc<CertifiedKey>,
}

impl fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("identity", &self.identity)
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl NodeCredentials {
    /// Pairs `key` with `chain`, checking that the leaf is the key's and
    /// names a node.
    pub fn new(
        key: NodeKey,
        chain: Vec<CertificateDer<'static>>,
    ) -> Result<Self, CredentialsError> {
        let leaf = chain.first().ok_or(CredentialsError::EmptyChain)?;
        let identity = NodeIdentity::from_der(leaf)?;
        let parsed = parse_certificate(leaf)?;
        if parsed.public_key().raw != key.public_key_der().as_slice() {
            return Err(CredentialsError::KeyMismatch);
        }
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key.private_key_der())
            .map_err(|e| CredentialsError::Key(e.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(chain.clone(), signing_key));
        Ok(NodeCredentials {
            key,
            chain,
            identity,
            certified,
        })
    }

    /// Credentials from an issued certificate and the key it was issued for.
    pub fn from_issued(key: NodeKey, issued: &IssuedCertificate) -> Result<Self, CredentialsError> {
        Self::new(key, issued.chain.clone())
    }

    /// Reads a PKCS#8 key and a certificate chain (PEM).
    pub fn from_pem(key_pem: &str, chain_pem: &[u8]) -> Result<Self, CredentialsError> {
        let key = NodeKey::from_pem(key_pem).map_err(|e| CredentialsError::Key(e.to_string()))?;
        let chain = parse_bundle_pem(chain_pem).map_err(|e| match e {
            TrustError::NoRoots => CredentialsError::EmptyChain,
            other => CredentialsError::from(other),
        })?;
        Self::new(key, chain)
    }

    /// What the leaf says.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The chain as PEM.
    pub fn chain_pem(&self) -> String {
        bundle_pem(&self.chain)
    }

    /// The key as PKCS#8 PEM (a secret).
    pub fn key_pem(&self) -> String {
        self.key.to_pem()
    }

    /// The key.
    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        self.certified.clone()
    }
}

/// A shared, swappable handle on a node's credentials. Servers and clients
/// built from it present whatever it holds at each new handshake.
#[derive(Clone)]
pub struct CredentialsHandle {
    current: Arc<ArcSwap<NodeCredentials>>,
}

impl fmt::Debug for CredentialsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CredentialsHandle")
            .field(&self.current.load().identity)
            .finish()
    }
}

impl CredentialsHandle {
    /// A handle holding `credentials`.
    pub fn new(credentials: NodeCredentials) -> Self {
        CredentialsHandle {
            current: Arc::new(ArcSwap::from_pointee(credentials)),
        }
    }

    /// The credentials in force.
    pub fn current(&self) -> Arc<NodeCredentials> {
        self.current.load_full()
    }

    /// Replaces the credentials (renewal, role change): new handshakes use
    /// them, open connections keep theirs. Refused for another cluster.
    pub fn replace(&self, credentials: NodeCredentials) -> Result<(), CredentialsError> {
        let current = self.current.load();
        if current.identity.cluster_id != credentials.identity.cluster_id {
            return Err(CredentialsError::ClusterMismatch {
                found: credentials.identity.cluster_id.clone(),
                expected: current.identity.cluster_id.clone(),
            });
        }
        self.current.store(Arc::new(credentials));
        Ok(())
    }
}

/// Presents the handle's credentials as a server.
#[derive(Debug)]
pub(crate) struct HandleResolver(pub(crate) CredentialsHandle);

impl ResolvesServerCert for HandleResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load().certified_key())
    }
}

impl ResolvesClientCert for HandleResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load().certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
