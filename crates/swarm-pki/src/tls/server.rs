//! The manager's server configuration.

use std::fmt;
use std::sync::Arc;

use rustls::ServerConfig;

use crate::auth::PeerPolicy;
use crate::clock::{SharedClock, system_clock};
use crate::credentials::{CredentialsHandle, HandleResolver};
use crate::revocation::{NoRevocation, Revocation};
use crate::trust::ClusterTrust;

use super::verify::ClusterClientVerifier;
use super::{ALPN_H2, TlsError, provider};

/// Builds a [`ServerTls`]. The server's credentials and the trust it
/// checks clients against are required by [`ServerTlsBuilder::new`]; the
/// rest has safe defaults.
#[derive(Debug)]
pub struct ServerTlsBuilder {
    credentials: CredentialsHandle,
    trust: ClusterTrust,
    revocation: Arc<dyn Revocation>,
    clock: SharedClock,
    require_client_cert: bool,
}

impl ServerTlsBuilder {
    /// A server presenting `credentials` and accepting client certificates
    /// that chain to `trust`'s roots and carry its cluster id.
    pub fn new(credentials: CredentialsHandle, trust: ClusterTrust) -> Self {
        ServerTlsBuilder {
            credentials,
            trust,
            revocation: Arc::new(NoRevocation),
            clock: system_clock(),
            require_client_cert: false,
        }
    }

    /// The hook that says which nodes were removed (checked at handshake
    /// and on every call). Default: none.
    pub fn revocation(mut self, revocation: Arc<dyn Revocation>) -> Self {
        self.revocation = revocation;
        self
    }

    /// The clock per-call expiry checks read. Default: the system clock.
    /// (Handshake checks use rustls's own time.)
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Refuse, at the TLS layer, clients without a certificate (for
    /// listeners that never serve joining nodes). Default: optional, and
    /// enforced per call (see the [module docs](super)).
    pub fn require_client_certificate(mut self, required: bool) -> Self {
        self.require_client_cert = required;
        self
    }

    /// The finished configuration.
    pub fn build(self) -> Result<ServerTls, TlsError> {
        let verifier = ClusterClientVerifier {
            trust: self.trust.clone(),
            revocation: self.revocation.clone(),
            mandatory: self.require_client_cert,
            cache: Default::default(),
        };
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(HandleResolver(self.credentials)));
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        // No resumption: a resumed session would carry the identity of the
        // certificate of its first handshake, hiding a renewal, a role
        // change or a removal from the handshake checks.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(ServerTls {
            config: Arc::new(config),
            policy: Arc::new(PeerPolicy {
                trust: self.trust,
                revocation: self.revocation,
                clock: self.clock,
            }),
        })
    }
}

/// A finished server configuration, with the per-call policy that
/// [`crate::auth`] applies to its connections.
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) policy: Arc<PeerPolicy>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The rustls configuration (for a custom accept loop; connections
    /// accepted that way get no per-call [`crate::auth::PeerInfo`]: prefer
    /// [`ServerTls::incoming`]).
    pub fn rustls_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}
