//! The `NodeCa` service over a [`NodeCaStore`].

use std::sync::Arc;
use std::time::Duration;

use swarm_api::v1::node_ca_server::{NodeCa, NodeCaServer};
use swarm_api::v1::{
    Certificate, GetRootCaCertificateRequest, GetRootCaCertificateResponse, IssuanceState,
    IssuanceStatus, IssueNodeCertificateRequest, IssueNodeCertificateResponse,
    NodeCertificateStatusRequest, NodeCertificateStatusResponse, NodeRole,
};
use tonic::{Request, Response, Status};

use crate::auth::peer_identity;
use crate::ca::{CaError, ClusterCa};
use crate::csr::MAX_CSR_BYTES;
use crate::issue::{IssueError, IssuedCertificate};
use crate::token::JoinToken;

use super::{NewNode, NodeCaStore};

/// How long `NodeCertificateStatus` waits for a pending certificate.
const STATUS_WAIT: Duration = Duration::from_secs(5);
const STATUS_POLL: Duration = Duration::from_millis(50);

/// The `NodeCa` service: serve it with [`NodeCaService::into_server`] on
/// a listener from [`crate::ServerTls::incoming`].
#[derive(Debug)]
pub struct NodeCaService<S> {
    ca: Arc<ClusterCa>,
    store: Arc<S>,
}

impl<S> Clone for NodeCaService<S> {
    fn clone(&self) -> Self {
        NodeCaService {
            ca: self.ca.clone(),
            store: self.store.clone(),
        }
    }
}

impl<S: NodeCaStore> NodeCaService<S> {
    /// The service signing with `ca` and recording in `store`.
    pub fn new(ca: Arc<ClusterCa>, store: Arc<S>) -> Self {
        NodeCaService { ca, store }
    }

    /// The tonic server to add to a router.
    pub fn into_server(self) -> NodeCaServer<Self> {
        NodeCaServer::new(self)
    }

    /// Renews the certificate of `node_id`, for a caller already
    /// authenticated as that node: directly by its certificate, or by a
    /// manager that forwarded the node's request. The certificate carries
    /// the role the cluster records for the node, and the new record is
    /// stored before the answer.
    pub async fn renew(
        &self,
        node_id: &str,
        csr: Vec<u8>,
    ) -> Result<IssueNodeCertificateResponse, Status> {
        if csr.len() > MAX_CSR_BYTES {
            return Err(Status::invalid_argument("CSR too large"));
        }
        let record_now = self
            .store
            .node(node_id)
            .await?
            .ok_or_else(|| Status::not_found(format!("node {node_id} not found")))?;
        let role = record_now.role;
        let issued = self.sign(csr.clone(), node_id.to_string(), role).await?;
        self.store
            .record_certificate(node_id, record(&issued, csr, role))
            .await?;
        tracing::info!(%node_id, role = role.as_str_name(), "renewed node certificate");
        Ok(IssueNodeCertificateResponse {
            node_id: node_id.to_string(),
            role: role.into(),
        })
    }

    async fn sign(
        &self,
        csr: Vec<u8>,
        node_id: String,
        role: NodeRole,
    ) -> Result<IssuedCertificate, Status> {
        let ca = self.ca.clone();
        // Signing may call an external signer that blocks.
        let issued = tokio::task::spawn_blocking(move || ca.issue(&csr, &node_id, role))
            .await
            .map_err(|e| Status::internal(format!("signing task: {e}")))?;
        issued.map_err(|e| match e {
            CaError::Issue(IssueError::Csr(e)) => Status::invalid_argument(e.to_string()),
            other => Status::internal(other.to_string()),
        })
    }
}

fn record(issued: &IssuedCertificate, csr: Vec<u8>, role: NodeRole) -> Certificate {
    Certificate {
        role: role.into(),
        csr,
        status: Some(IssuanceStatus {
            state: IssuanceState::Issued.into(),
            err: String::new(),
        }),
        certificate: issued.chain_pem().into_bytes(),
        cn: issued.identity.node_id.clone(),
    }
}

#[tonic::async_trait]
impl<S: NodeCaStore> NodeCa for NodeCaService<S> {
    async fn get_root_ca_certificate(
        &self,
        _request: Request<GetRootCaCertificateRequest>,
    ) -> Result<Response<GetRootCaCertificateResponse>, Status> {
        Ok(Response::new(GetRootCaCertificateResponse {
            certificate: self.ca.root_bundle_pem().into_bytes(),
        }))
    }

    async fn issue_node_certificate(
        &self,
        request: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        if request.get_ref().csr.len() > MAX_CSR_BYTES {
            return Err(Status::invalid_argument("CSR too large"));
        }
        if request.get_ref().token.is_empty() {
            // Renewal: the caller's own certificate says who it is.
            let identity = peer_identity(&request)?;
            let csr = request.into_inner().csr;
            return self.renew(&identity.node_id, csr).await.map(Response::new);
        }
        let req = request.into_inner();
        let token = JoinToken::parse(&req.token)
            .map_err(|e| Status::invalid_argument(format!("join token: {e}")))?;
        let tokens = self.store.join_tokens().await?;
        let role = tokens
            .role_for(&token)
            .ok_or_else(|| Status::permission_denied("invalid join token"))?;
        let node_id = swarm_api::id::new_id();
        let issued = self.sign(req.csr.clone(), node_id.clone(), role).await?;
        let availability = req.availability();
        self.store
            .create_node(NewNode {
                node_id: node_id.clone(),
                role,
                availability,
                certificate: record(&issued, req.csr, role),
            })
            .await?;
        tracing::info!(%node_id, role = role.as_str_name(), "node joined");
        Ok(Response::new(IssueNodeCertificateResponse {
            node_id,
            role: role.into(),
        }))
    }

    async fn node_certificate_status(
        &self,
        request: Request<NodeCertificateStatusRequest>,
    ) -> Result<Response<NodeCertificateStatusResponse>, Status> {
        let node_id = request.into_inner().node_id;
        let deadline = tokio::time::Instant::now() + STATUS_WAIT;
        loop {
            let record = self
                .store
                .node(&node_id)
                .await?
                .ok_or_else(|| Status::not_found(format!("node {node_id} not found")))?;
            let certificate = record.certificate.unwrap_or_default();
            let state = certificate
                .status
                .as_ref()
                .map(|s| s.state())
                .unwrap_or(IssuanceState::Unknown);
            let settled = matches!(state, IssuanceState::Issued | IssuanceState::Failed);
            if settled || tokio::time::Instant::now() >= deadline {
                return Ok(Response::new(NodeCertificateStatusResponse {
                    status: certificate.status.clone(),
                    certificate: Some(certificate),
                }));
            }
            tokio::time::sleep(STATUS_POLL).await;
        }
    }
}
