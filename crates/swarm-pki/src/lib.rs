//! The swarm-rs cluster CA: root CA, node certificates, join tokens, root
//! rotation, and mutual TLS with roles.
//!
//! Every connection in a cluster is mutual TLS; every node's identity and
//! role is in its certificate (CN = node id, OU = `swarm-manager` or
//! `swarm-worker`, O = cluster id), and nodes join only with a token.
//!
//! # The pieces
//!
//! - [`RootCa`]: generate (ECDSA P-256, 20 years), load (PEM), or use an
//!   external [`CaSigner`] (HSM, KMS, another service).
//! - [`ClusterCa`]: signs node certificates from CSRs with the subject it
//!   decides ([`ClusterCa::issue`]), 90 days by default (at least 1 hour,
//!   [`NodeCertValidity`]), and drives root rotation with a cross-signed
//!   intermediate ([`ClusterCa::start_rotation`], [`ClusterCa::finish_rotation`]).
//! - [`NodeKey`]: a node's key and CSR; [`verify_csr`] reads a CSR from
//!   untrusted bytes.
//! - [`JoinToken`], [`JoinTokens`]: `SWMTKN-1-<digest>-<secret>`, strict
//!   parser, constant-time comparison, rotation.
//! - [`renewal`]: when to renew (random point in 50–80% of the life).
//! - TLS: [`ServerTlsBuilder`], [`ClientTlsBuilder`] (rustls, `ring`, TLS
//!   1.3), reading live [`CredentialsHandle`] and [`ClusterTrust`] handles,
//!   so renewals and rotations apply without restarts. See [`tls`] for how
//!   one listener serves both joining nodes (no certificate yet) and joined
//!   ones.
//! - Serving and calling: [`ServerTls::incoming`] feeds tonic's
//!   `serve_with_incoming`; [`auth::peer_identity`], [`auth::require_manager`]
//!   and [`auth::require_worker_or_manager`] authorize each call;
//!   [`NodeChannelBuilder`] makes tonic channels for any generated client.
//! - The `NodeCa` gRPC service, [`service::NodeCaService`], over a
//!   [`service::NodeCaStore`] the manager implements; the node side is
//!   [`join()`] and [`renew()`].
//! - [`CredentialStore`]: key (0600), chain and roots on disk, atomically.
//!
//! # Wiring a manager
//!
//! 1. Bootstrap: [`RootCa::generate`], [`ClusterCa::new`],
//!    [`JoinTokens::generate`], and the first manager's own certificate
//!    with [`ClusterCa::issue_for_key`]. Store the CA with
//!    [`ClusterCa::to_proto`] in the cluster object; other managers load it
//!    with [`ClusterCa::from_proto`].
//! 2. Serve: [`ServerTlsBuilder::new`] with the manager's
//!    [`CredentialsHandle`] and [`ClusterCa::trust`], `.revocation(store)`,
//!    then `Server::builder()...serve_with_incoming(server_tls.incoming(listener))`,
//!    with [`service::NodeCaService`] among the services.
//! 3. In every handler that needs a node: `require_manager(&request)?` or
//!    `require_worker_or_manager(&request)?` (errors convert to `Status`).
//! 4. Rotation: [`ClusterCa::start_rotation`], re-issue nodes (their
//!    [`ClusterCa::needs_reissue`] is true), [`ClusterCa::finish_rotation`],
//!    re-bind the tokens with [`JoinTokens::with_root_digest`].
//!
//! # Wiring an agent
//!
//! [`join()`] once (with [`JoinOptions::store`] set), or
//! [`CredentialStore::load`] on restart; [`NodeTls::new`]; build clients
//! with [`NodeChannelBuilder`] from [`NodeTls::client_tls`]; schedule
//! [`renew()`] with [`renewal::plan_renewal`] and [`NodeTls::apply`] the
//! result: open channels keep working and reconnect with the new
//! certificate.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use swarm_api::v1::NodeRole;
//! use swarm_pki::{
//!     ClientTlsBuilder, ClusterCa, CredentialsHandle, JoinToken, JoinTokens, NodeCredentials,
//!     NodeKey, RootCa, ServerTlsBuilder,
//! };
//!
//! // A new cluster: root CA and join tokens.
//! let root = RootCa::generate(SystemTime::now())?;
//! let ca = ClusterCa::new("mycluster", root.clone())?;
//! let tokens = JoinTokens::generate(root.digest(), &mut rand::rng());
//! let worker_token = JoinToken::parse(&tokens.worker.to_string())?;
//! assert_eq!(tokens.role_for(&worker_token), Some(NodeRole::Worker));
//!
//! // A node sends a CSR; the CA decides what the certificate says.
//! let key = NodeKey::generate()?;
//! let node_id = swarm_api::id::new_id();
//! let issued = ca.issue(key.csr_pem()?.as_bytes(), &node_id, NodeRole::Worker)?;
//! assert_eq!(issued.identity.node_id, node_id);
//! assert_eq!(issued.identity.cluster_id, "mycluster");
//! assert_eq!(issued.identity.role, NodeRole::Worker);
//!
//! // mTLS configurations for a manager and a node.
//! let manager_key = NodeKey::generate()?;
//! let manager = ca.issue_for_key(&manager_key, &swarm_api::id::new_id(), NodeRole::Manager)?;
//! let manager_creds = CredentialsHandle::new(NodeCredentials::from_issued(manager_key, &manager)?);
//! let _server = ServerTlsBuilder::new(manager_creds, ca.trust()).build()?;
//! let node_creds = CredentialsHandle::new(NodeCredentials::from_issued(key, &issued)?);
//! let _client = ClientTlsBuilder::new(node_creds, ca.trust()).build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod auth;
mod base36;
mod ca;
mod ca_proto;
mod channel;
pub mod clock;
mod credentials;
mod csr;
pub mod fuzzing;
mod identity;
mod issue;
mod join;
pub mod renewal;
mod revocation;
pub mod role;
mod root;
mod serve;
pub mod service;
mod signer;
mod storage;
pub mod tls;
mod token;
mod trust;

pub use auth::{AuthError, PeerInfo, peer_identity, require_manager, require_worker_or_manager};
pub use ca::{CaError, ClusterCa, Rotation};
pub use ca_proto::digest_base36;
pub use channel::{ChannelError, NodeChannelBuilder};
pub use credentials::{CredentialsError, CredentialsHandle, NodeCredentials};
pub use csr::{CsrError, MAX_CSR_BYTES, NodeKey, VerifiedCsr, verify_csr};
pub use identity::{IdentityError, NodeIdentity};
pub use issue::{IssueError, IssuedCertificate, NodeCertValidity};
pub use join::{Enrollment, JoinError, JoinOptions, NodeTls, join, renew};
pub use revocation::{NoRevocation, RemovedNodes, Revocation};
pub use root::{CLOCK_SKEW_BACKDATE, ROOT_CN, RootCa, RootError};
pub use serve::{HANDSHAKE_TIMEOUT, MtlsIncoming, MtlsStream};
pub use signer::{CaSigner, LocalSigner, SignerAlgorithm, SignerError};
pub use storage::{
    CERT_FILE, CredentialStore, KEY_FILE, ROOTS_FILE, StorageError, StoredNode, write_atomic,
};
pub use tls::{ClientTls, ClientTlsBuilder, ServerTls, ServerTlsBuilder, TlsError};
pub use token::{
    DIGEST_LEN, JoinToken, JoinTokens, SECRET_LEN, TOKEN_LEN, TOKEN_PREFIX, TOKEN_VERSION,
    TokenError,
};
pub use trust::{
    ChainError, ClusterTrust, MAX_BUNDLE_BYTES, TrustError, bundle_pem, parse_bundle_pem,
};
