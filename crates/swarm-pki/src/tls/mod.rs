//! rustls configurations for the cluster, built only through builders that
//! take every mandatory part up front, so a half-set-up config cannot exist.
//!
//! # One listener for joining and joined nodes
//!
//! A manager serves everything on one port. A node that is joining has no
//! certificate yet, so the server *offers* client authentication but does
//! not require it at the TLS layer:
//!
//! - a client that presents a certificate must present a valid one: it
//!   must chain to a trusted root, be within its validity, carry this
//!   cluster's id (O) and not belong to a removed node; anything else fails
//!   the handshake;
//! - a client that presents none gets a connection on which only calls
//!   that check nothing pass: every handler that needs a node calls
//!   [`crate::auth::peer_identity`] (or [`crate::auth::require_manager`],
//!   [`crate::auth::require_worker_or_manager`]), which refuses a
//!   certificate-less peer with `UNAUTHENTICATED`. The CA service's
//!   `GetRootCaCertificate`, `IssueNodeCertificate` with a join token and
//!   `NodeCertificateStatus` are the calls meant for such peers.
//!
//! A server that must never see an anonymous peer (raft between managers,
//! say) uses [`ServerTlsBuilder::require_client_certificate`].
//!
//! Only TLS 1.3 is offered, with the `ring` provider. ALPN is `h2`.
//! Session resumption is off on both sides: a resumed session would carry
//! the certificate of its first handshake, so a renewal, a promotion or a
//! removal would not be seen at the handshake. Every connection is a full
//! handshake with the credentials in force.

mod client;
mod server;
pub(crate) mod verify;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use client::{ClientTls, ClientTlsBuilder};
pub use server::{ServerTls, ServerTlsBuilder};

/// Why a TLS configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The server name is not a valid DNS name.
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

/// The crypto provider every config of this crate uses (`ring`).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

pub(crate) const ALPN_H2: &[u8] = b"h2";
