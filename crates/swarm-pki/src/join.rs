//! The node side of the CA: joining with a token, renewing with the
//! current certificate.
//!
//! Joining, step by step:
//! 1. Connect without trusting anything yet (the handshake signatures are
//!    still checked) and ask only for the root CA bundle.
//! 2. Keep the root whose SHA-256 is the token's digest; none matches →
//!    [`JoinError::RootDigestMismatch`], and nothing else was sent.
//! 3. Reconnect trusting only that root, send a fresh key's CSR with the
//!    token, wait for the certificate.
//! 4. Check the certificate: our key, the node id and role the manager
//!    announced, chains to the pinned root.
//! 5. Fetch the root bundle again over the verified connection (during a
//!    rotation it holds the new root too) and store key, chain and roots.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use swarm_api::v1::node_ca_client::NodeCaClient;
use swarm_api::v1::{
    GetRootCaCertificateRequest, IssuanceState, IssueNodeCertificateRequest, NodeAvailability,
    NodeCertificateStatusRequest, NodeRole,
};
use tonic::transport::{Channel, Endpoint};

use crate::channel::MtlsConnector;
use crate::clock::{SharedClock, system_clock};
use crate::credentials::{CredentialsError, CredentialsHandle, NodeCredentials};
use crate::csr::{CsrError, NodeKey};
use crate::identity::hex;
use crate::role::MANAGER_SERVER_NAME;
use crate::root::sha256;
use crate::storage::{CredentialStore, StorageError};
use crate::tls::verify::AcceptAnyServer;
use crate::tls::{ALPN_H2, ClientTls, ClientTlsBuilder, TlsError, provider};
use crate::token::JoinToken;
use crate::trust::{ChainError, ClusterTrust, TrustError, parse_bundle_pem};

/// Why a join or renewal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// No connection to the manager.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The manager's address.
        addr: String,
        /// The error.
        source: tonic::transport::Error,
    },
    /// A call was refused or failed.
    #[error("manager refused: {0}")]
    Rpc(#[from] tonic::Status),
    /// The served root is not the one the token names: wrong cluster, or
    /// someone in the middle. Nothing but the root request was sent.
    #[error("the manager's root CA (digests {served:?}) is not the token's ({expected})")]
    RootDigestMismatch {
        /// The token's digest (hex).
        expected: String,
        /// Digests of the served roots (hex).
        served: Vec<String>,
    },
    /// The served root bundle is unusable.
    #[error("root CA bundle: {0}")]
    Roots(#[from] TrustError),
    /// The key or CSR could not be made.
    #[error(transparent)]
    Key(#[from] CsrError),
    /// The issued certificate is not acceptable.
    #[error("issued certificate refused: {0}")]
    Certificate(String),
    /// The manager reports the issuance failed.
    #[error("certificate issuance failed: {0}")]
    IssuanceFailed(String),
    /// No certificate within the time allowed.
    #[error("timed out waiting for the certificate")]
    Timeout,
    /// TLS configuration error.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Storing the credentials failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<CredentialsError> for JoinError {
    fn from(e: CredentialsError) -> Self {
        JoinError::Certificate(e.to_string())
    }
}

impl From<ChainError> for JoinError {
    fn from(e: ChainError) -> Self {
        JoinError::Certificate(e.to_string())
    }
}

/// Options of [`join`] and [`renew`].
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Availability the node starts with (join only).
    pub availability: NodeAvailability,
    /// How long to wait for the certificate once requested.
    pub timeout: Duration,
    /// Where to store key, certificate and roots (atomically, key 0600).
    pub store: Option<CredentialStore>,
    /// Clock used to check the issued certificate.
    pub clock: SharedClock,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            availability: NodeAvailability::Active,
            timeout: Duration::from_secs(30),
            store: None,
            clock: system_clock(),
        }
    }
}

/// A node's certificate material after a join or renewal.
#[derive(Debug)]
pub struct Enrollment {
    /// Key and chain.
    pub credentials: NodeCredentials,
    /// The roots to trust from now on.
    pub roots: Vec<CertificateDer<'static>>,
}

/// A node's live TLS state: handles that servers and clients built from
/// it read at each handshake, updated in place by [`NodeTls::apply`].
#[derive(Debug, Clone)]
pub struct NodeTls {
    /// The node's credentials.
    pub credentials: CredentialsHandle,
    /// What the node trusts.
    pub trust: ClusterTrust,
}

impl NodeTls {
    /// Live state from an enrollment.
    pub fn new(enrollment: Enrollment) -> Result<Self, JoinError> {
        let cluster_id = enrollment.credentials.identity().cluster_id.clone();
        Ok(NodeTls {
            trust: ClusterTrust::new(&cluster_id, enrollment.roots)?,
            credentials: CredentialsHandle::new(enrollment.credentials),
        })
    }

    /// A client configuration presenting these credentials.
    pub fn client_tls(&self) -> Result<ClientTls, TlsError> {
        ClientTlsBuilder::new(self.credentials.clone(), self.trust.clone()).build()
    }

    /// Puts a renewal in force: new roots, then new credentials.
    pub fn apply(&self, enrollment: Enrollment) -> Result<(), JoinError> {
        self.trust.set_roots(enrollment.roots)?;
        self.credentials.replace(enrollment.credentials)?;
        Ok(())
    }
}

async fn channel(addr: &str, config: ClientConfig) -> Result<Channel, JoinError> {
    let connector = MtlsConnector::with_config(Arc::new(config), MANAGER_SERVER_NAME)?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| JoinError::Connect {
            addr: addr.to_string(),
            source: e,
        })?
        .connect_timeout(Duration::from_secs(10));
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|source| JoinError::Connect {
            addr: addr.to_string(),
            source,
        })
}

fn base_config() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsError> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))
}

async fn fetch_roots(
    client: &mut NodeCaClient<Channel>,
) -> Result<Vec<CertificateDer<'static>>, JoinError> {
    let bundle = client
        .get_root_ca_certificate(GetRootCaCertificateRequest {})
        .await?
        .into_inner()
        .certificate;
    Ok(parse_bundle_pem(&bundle)?)
}

/// Joins the cluster of the manager at `addr` (`host:port`) with `token`.
pub async fn join(
    addr: &str,
    token: &JoinToken,
    options: &JoinOptions,
) -> Result<Enrollment, JoinError> {
    // 1-2: fetch the root without trusting anything, pin it by digest.
    let mut config = base_config()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    let served = {
        let mut client = NodeCaClient::new(channel(addr, config).await?);
        fetch_roots(&mut client).await?
    };
    let pinned = served
        .iter()
        .find(|c| sha256(c) == *token.root_digest())
        .cloned()
        .ok_or_else(|| JoinError::RootDigestMismatch {
            expected: hex(token.root_digest()),
            served: served.iter().map(|c| hex(&sha256(c))).collect(),
        })?;

    // 3: a verified connection to a manager under the pinned root.
    let mut roots = RootCertStore::empty();
    roots
        .add(pinned.clone())
        .map_err(|e| TrustError::BadRoot(e.to_string()))?;
    let mut config = base_config()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    let mut client = NodeCaClient::new(channel(addr, config).await?);
    let key = NodeKey::generate()?;
    let response = client
        .issue_node_certificate(IssueNodeCertificateRequest {
            csr: key.csr_pem()?.into_bytes(),
            token: token.to_string(),
            availability: options.availability.into(),
        })
        .await?
        .into_inner();
    let role = response.role();

    // 4: wait for and check the certificate.
    let chain = wait_certificate(&mut client, &response.node_id, options.timeout).await?;
    let credentials = NodeCredentials::new(key, chain)?;
    check_issued(&credentials, &response.node_id, role)?;
    let cluster_id = credentials.identity().cluster_id.clone();
    ClusterTrust::new(&cluster_id, vec![pinned])?
        .verify_node_chain(credentials.chain(), options.clock.now())?;

    // 5: the roots, as a verified manager serves them.
    finish(&mut client, credentials, options).await
}

/// Renews the node's certificate at the manager at `addr`, authenticating
/// with the current one. Returns the new material; [`NodeTls::apply`]
/// puts it in force.
pub async fn renew(
    addr: &str,
    node: &NodeTls,
    options: &JoinOptions,
) -> Result<Enrollment, JoinError> {
    let current = node.credentials.current();
    let node_id = current.identity().node_id.clone();
    let tls = node.client_tls()?;
    let config = Arc::unwrap_or_clone(tls.rustls_config());
    let mut client = NodeCaClient::new(channel(addr, config).await?);
    let key = NodeKey::generate()?;
    let response = client
        .issue_node_certificate(IssueNodeCertificateRequest {
            csr: key.csr_pem()?.into_bytes(),
            token: String::new(),
            availability: NodeAvailability::Active.into(),
        })
        .await?
        .into_inner();
    if response.node_id != node_id {
        return Err(JoinError::Certificate(format!(
            "renewal answered for node {} instead of {node_id}",
            response.node_id
        )));
    }
    let chain = wait_certificate(&mut client, &node_id, options.timeout).await?;
    let credentials = NodeCredentials::new(key, chain)?;
    check_issued(&credentials, &node_id, response.role())?;
    node.trust
        .verify_node_chain(credentials.chain(), options.clock.now())?;
    finish(&mut client, credentials, options).await
}

async fn finish(
    client: &mut NodeCaClient<Channel>,
    credentials: NodeCredentials,
    options: &JoinOptions,
) -> Result<Enrollment, JoinError> {
    let roots = fetch_roots(client).await?;
    let cluster_id = credentials.identity().cluster_id.clone();
    ClusterTrust::new(&cluster_id, roots.clone())?
        .verify_node_chain(credentials.chain(), options.clock.now())?;
    let enrollment = Enrollment { credentials, roots };
    if let Some(store) = &options.store {
        let store = store.clone();
        let enrollment = tokio::task::spawn_blocking(move || {
            store
                .save(&enrollment.credentials, &enrollment.roots)
                .map(|()| enrollment)
        })
        .await
        .map_err(|e| JoinError::Certificate(format!("storage task: {e}")))??;
        return Ok(enrollment);
    }
    Ok(enrollment)
}

fn check_issued(
    credentials: &NodeCredentials,
    node_id: &str,
    role: NodeRole,
) -> Result<(), JoinError> {
    let identity = credentials.identity();
    if identity.node_id != node_id || identity.role != role {
        return Err(JoinError::Certificate(format!(
            "certificate names {} ({}), expected {node_id} ({})",
            identity.node_id,
            identity.role.as_str_name(),
            role.as_str_name()
        )));
    }
    Ok(())
}

async fn wait_certificate(
    client: &mut NodeCaClient<Channel>,
    node_id: &str,
    timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>, JoinError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = tokio::time::timeout_at(
            deadline,
            client.node_certificate_status(NodeCertificateStatusRequest {
                node_id: node_id.to_string(),
            }),
        )
        .await
        .map_err(|_| JoinError::Timeout)??
        .into_inner();
        let state = status.status.as_ref().map(|s| s.state());
        match state {
            Some(IssuanceState::Issued) => {
                let pem = status
                    .certificate
                    .map(|c| c.certificate)
                    .unwrap_or_default();
                return parse_bundle_pem(&pem).map_err(|e| JoinError::Certificate(e.to_string()));
            }
            Some(IssuanceState::Failed) => {
                let err = status.status.map(|s| s.err).unwrap_or_default();
                return Err(JoinError::IssuanceFailed(err));
            }
            _ if tokio::time::Instant::now() >= deadline => return Err(JoinError::Timeout),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

impl fmt::Display for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.credentials.identity();
        write!(
            f,
            "node {} ({}) of cluster {}",
            id.node_id,
            id.role.as_str_name(),
            id.cluster_id
        )
    }
}
