//! A node's client configuration.

use std::fmt;
use std::sync::Arc;

use rustls::ClientConfig;

use crate::credentials::{CredentialsHandle, HandleResolver};
use crate::trust::ClusterTrust;

use super::verify::ClusterServerVerifier;
use super::{ALPN_H2, TlsError, provider};

/// Builds a [`ClientTls`]: a node presenting its certificate and trusting
/// the cluster's roots. Both are required by [`ClientTlsBuilder::new`].
#[derive(Debug)]
pub struct ClientTlsBuilder {
    credentials: CredentialsHandle,
    trust: ClusterTrust,
}

impl ClientTlsBuilder {
    /// A client presenting `credentials` and accepting servers whose
    /// certificates chain to `trust`'s roots and carry its cluster id.
    pub fn new(credentials: CredentialsHandle, trust: ClusterTrust) -> Self {
        ClientTlsBuilder { credentials, trust }
    }

    /// The finished configuration.
    pub fn build(self) -> Result<ClientTls, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ClusterServerVerifier { trust: self.trust }))
            .with_client_cert_resolver(Arc::new(HandleResolver(self.credentials)));
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        // Every connection is a full handshake with the credentials in
        // force (see the server side).
        config.resumption = rustls::client::Resumption::disabled();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

/// A finished client configuration.
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A client that presents no certificate but verifies the server
    /// against `trust` like a node does: for the calls that need no node
    /// certificate (fetching the roots, a certificate's status), e.g. from
    /// tooling. Such a client is refused by every call that authorizes.
    pub fn anonymous(trust: ClusterTrust) -> Result<ClientTls, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ClusterServerVerifier { trust }))
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        // Every connection is a full handshake with the credentials in
        // force (see the server side).
        config.resumption = rustls::client::Resumption::disabled();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration (for a custom connector).
    pub fn rustls_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}
