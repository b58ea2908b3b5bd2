//! Per-call authorization: who is calling, from the certificate verified
//! at the handshake, re-checked on every call.
//!
//! Connections accepted through [`crate::ServerTls::incoming`] carry a
//! [`PeerInfo`] in every request's extensions. [`peer_identity`] reads it
//! and checks, for this call: a certificate was presented; it has not
//! expired since the handshake; the node was not removed since; and, when
//! the trusted roots changed since (a root rotation finished), that the
//! chain still verifies against the new roots. Role checks build on it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::pki_types::CertificateDer;
use swarm_api::v1::NodeRole;

use crate::clock::SharedClock;
use crate::identity::NodeIdentity;
use crate::revocation::Revocation;
use crate::trust::{ClusterTrust, unix_time};

/// Why a call is not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request did not come through an mTLS listener of this crate.
    #[error("not an mTLS connection")]
    NotTls,
    /// The peer presented no certificate.
    #[error("no client certificate: this call needs a node certificate")]
    NoCertificate,
    /// The certificate is not (or no longer) valid for this cluster.
    #[error("certificate refused: {0}")]
    Refused(String),
    /// The certificate has expired (or is not valid yet).
    #[error("certificate of node {0} is expired or not yet valid")]
    Expired(String),
    /// The node was removed from the cluster.
    #[error("node {0} was removed from the cluster")]
    Removed(String),
    /// The node's role may not make this call.
    #[error("node {node_id} is a {role}; this call needs a manager")]
    Role {
        /// Caller.
        node_id: String,
        /// Caller's role.
        role: &'static str,
    },
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::NotTls | AuthError::NoCertificate => {
                tonic::Status::unauthenticated(e.to_string())
            }
            _ => tonic::Status::permission_denied(e.to_string()),
        }
    }
}

/// What a server checks peers against on every call.
pub(crate) struct PeerPolicy {
    pub(crate) trust: ClusterTrust,
    pub(crate) revocation: Arc<dyn Revocation>,
    pub(crate) clock: SharedClock,
}

impl fmt::Debug for PeerPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerPolicy")
            .field("trust", &self.trust)
            .field("revocation", &self.revocation)
            .finish_non_exhaustive()
    }
}

struct ConnAuth {
    chain: Vec<CertificateDer<'static>>,
    /// Identity verified at the handshake (`None`: no certificate).
    identity: Option<NodeIdentity>,
    policy: Arc<PeerPolicy>,
    /// Trust generation the chain was last verified against, and whether
    /// it passed.
    verified: Mutex<(u64, bool)>,
}

/// The peer of a connection accepted by [`crate::ServerTls::incoming`]:
/// tonic puts it in every request's extensions.
#[derive(Clone)]
pub struct PeerInfo {
    remote_addr: Option<SocketAddr>,
    conn: Arc<ConnAuth>,
}

impl fmt::Debug for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerInfo")
            .field("remote_addr", &self.remote_addr)
            .field("identity", &self.conn.identity)
            .finish()
    }
}

impl PeerInfo {
    pub(crate) fn new(
        remote_addr: Option<SocketAddr>,
        chain: Vec<CertificateDer<'static>>,
        policy: Arc<PeerPolicy>,
    ) -> Self {
        let generation = policy.trust.load().generation;
        // The handshake verified the chain; read the identity again for
        // the per-call checks (None only when no certificate was sent).
        let identity = chain
            .first()
            .and_then(|leaf| NodeIdentity::from_der(leaf).ok());
        let verified = identity.is_some();
        PeerInfo {
            remote_addr,
            conn: Arc::new(ConnAuth {
                chain,
                identity,
                policy,
                verified: Mutex::new((generation, verified)),
            }),
        }
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The peer's certificate chain (empty without a certificate).
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.conn.chain
    }

    /// The identity verified at the handshake, checked again now.
    pub fn identity(&self) -> Result<NodeIdentity, AuthError> {
        self.check().cloned()
    }

    /// Checks the identity verified at the handshake again now (expiry,
    /// removal, root rotation) and borrows it: what [`PeerInfo::identity`]
    /// does without copying, for calls made many times on one connection
    /// (each message of a long-lived stream).
    pub fn check(&self) -> Result<&NodeIdentity, AuthError> {
        let conn = &self.conn;
        let identity = conn.identity.as_ref().ok_or(if conn.chain.is_empty() {
            AuthError::NoCertificate
        } else {
            AuthError::Refused("certificate does not name a node".into())
        })?;
        let policy = &conn.policy;
        let now = policy.clock.now();
        if !identity.is_valid_at(now) {
            return Err(AuthError::Expired(identity.node_id.clone()));
        }
        if policy.revocation.is_removed(&identity.node_id) {
            return Err(AuthError::Removed(identity.node_id.clone()));
        }
        let trust = policy.trust.load();
        let mut verified = conn.verified.lock();
        if verified.0 != trust.generation {
            // The roots changed since this connection was verified.
            let ok = trust.verify_node_chain(&conn.chain, unix_time(now)).is_ok();
            *verified = (trust.generation, ok);
        }
        if !verified.1 {
            return Err(AuthError::Refused(
                "certificate no longer chains to a trusted root".into(),
            ));
        }
        Ok(identity)
    }
}

impl tonic::transport::server::Connected for crate::serve::MtlsStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

/// The peer of a request, when it came through an mTLS listener.
pub fn peer_info<T>(request: &tonic::Request<T>) -> Option<&PeerInfo> {
    request.extensions().get::<PeerInfo>()
}

/// The verified identity of the caller of `request` (see the module docs
/// for what is checked).
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Result<NodeIdentity, AuthError> {
    peer_info(request).ok_or(AuthError::NotTls)?.identity()
}

/// The caller, if it is a manager of this cluster.
pub fn require_manager<T>(request: &tonic::Request<T>) -> Result<NodeIdentity, AuthError> {
    let identity = peer_identity(request)?;
    if identity.role != NodeRole::Manager {
        return Err(AuthError::Role {
            node_id: identity.node_id,
            role: "worker",
        });
    }
    Ok(identity)
}

/// The caller, if it is any node (worker or manager) of this cluster.
pub fn require_worker_or_manager<T>(
    request: &tonic::Request<T>,
) -> Result<NodeIdentity, AuthError> {
    peer_identity(request)
}
