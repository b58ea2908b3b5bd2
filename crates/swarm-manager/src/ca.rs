//! The CA server of a manager: the `NodeCa` service of swarm-pki over the
//! replicated store, removed nodes refused everywhere.
//!
//! Certificates are issued and recorded by the leader, as in SwarmKit: a
//! follower passes joins on to it, and renewals too, naming the node its
//! own TLS listener authenticated (only a manager may name another node).
//! Certificate status questions also go to the leader, so that a node
//! that renewed through a follower gets the certificate just recorded, not
//! the one the follower's store may still hold. A follower that cannot
//! reach a leader still answers status questions from its own store.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use swarm_api::v1::node_ca_client::NodeCaClient;
use swarm_api::v1::node_ca_server::{NodeCa, NodeCaServer};
use swarm_api::v1::*;
use swarm_pki::service::{
    NewNode, NodeCaService, NodeCaStore, NodeRecord, StoreError as CaStoreError,
};
use swarm_pki::{ClusterCa, JoinTokens, RemovedNodes, Revocation};
use swarm_raft::Connector;
use swarm_store::{Event, Kind, Store, StoreError, WatchFilter};
use tonic::{Request, Response, Status};

use crate::dispatcher::ClusterInfo;
use crate::error::not_leader;

/// Metadata naming the node a follower renews a certificate for: set by a
/// follower on the renewal it passes to the leader.
const RENEW_FOR: &str = "swarm-renew-for";

/// Removed nodes, kept in memory from the cluster object (checked on every
/// TLS handshake and call).
#[derive(Debug, Clone, Default)]
pub struct Revoked {
    set: Arc<RemovedNodes>,
}

impl Revoked {
    /// Follows `cluster.removed_nodes` in `store` until the store closes.
    pub fn follow(&self, store: &Store) -> tokio::task::JoinHandle<()> {
        let set = self.set.clone();
        let (ids, mut watcher) = store.view_and_watch(
            WatchFilter::all().kinds([Kind::Cluster]).commits(false),
            |v| {
                v.all::<Cluster>()
                    .iter()
                    .flat_map(|c| c.removed_nodes.clone())
                    .collect::<Vec<_>>()
            },
        );
        for id in ids {
            set.remove(&id);
        }
        tokio::spawn(async move {
            while let Ok(e) = watcher.recv().await {
                if let Event::Created(o) | Event::Updated { new: o, .. } = e
                    && let Some(c) = o.downcast::<Cluster>()
                {
                    for id in &c.removed_nodes {
                        set.remove(id);
                    }
                }
            }
        })
    }
}

impl Revocation for Revoked {
    fn is_removed(&self, node_id: &str) -> bool {
        self.set.is_removed(node_id)
    }
}

/// The manager's records for the CA service.
#[derive(Clone)]
pub struct StoreCa {
    store: Store,
    revoked: Revoked,
}

impl std::fmt::Debug for StoreCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCa").finish_non_exhaustive()
    }
}

impl StoreCa {
    /// Records over `store`, refusing `revoked` nodes.
    pub fn new(store: Store, revoked: Revoked) -> Self {
        StoreCa { store, revoked }
    }
}

impl Revocation for StoreCa {
    fn is_removed(&self, node_id: &str) -> bool {
        self.revoked.is_removed(node_id)
    }
}

fn ca_err(e: StoreError) -> CaStoreError {
    match not_leader(&e) {
        Some(_) => CaStoreError::Unavailable(e.to_string()),
        None => match e {
            StoreError::Exists { id, .. } => CaStoreError::Exists(id),
            other => CaStoreError::Failed(other.to_string()),
        },
    }
}

impl NodeCaStore for StoreCa {
    async fn join_tokens(&self) -> Result<JoinTokens, CaStoreError> {
        let view = self.store.view();
        let cluster = view
            .all::<Cluster>()
            .first()
            .cloned()
            .ok_or_else(|| CaStoreError::Unavailable("no cluster object yet".into()))?;
        let proto = cluster
            .root_ca
            .as_ref()
            .and_then(|r| r.join_tokens.clone())
            .unwrap_or_default();
        JoinTokens::from_proto(&proto)
            .map_err(|e| CaStoreError::Failed(format!("stored join tokens: {e}")))
    }

    async fn create_node(&self, node: NewNode) -> Result<(), CaStoreError> {
        self.store
            .update(|tx| {
                tx.create(Node {
                    id: node.node_id.clone(),
                    spec: Some(NodeSpec {
                        desired_role: node.role.into(),
                        availability: node.availability.into(),
                        ..Default::default()
                    }),
                    role: node.role.into(),
                    certificate: Some(node.certificate.clone()),
                    status: Some(NodeStatus {
                        state: NodeState::Unknown.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .map(drop)
            })
            .await
            .map_err(ca_err)
    }

    async fn node(&self, node_id: &str) -> Result<Option<NodeRecord>, CaStoreError> {
        Ok(self.store.view().get::<Node>(node_id).map(|n| NodeRecord {
            role: n.spec.as_ref().map_or(n.role(), |s| s.desired_role()),
            certificate: n.certificate.clone(),
        }))
    }

    async fn record_certificate(
        &self,
        node_id: &str,
        certificate: Certificate,
    ) -> Result<(), CaStoreError> {
        crate::retry::update_retry(&self.store, |tx| {
            let Some(n) = tx.get::<Node>(node_id) else {
                return Ok(());
            };
            let mut n = (*n).clone();
            n.role = certificate.role;
            n.certificate = Some(certificate.clone());
            tx.update(n).map(drop)
        })
        .await
        .map_err(ca_err)
    }
}

/// The `NodeCa` service of a manager. It serves once the CA is known (a
/// joining manager learns it from the replicated cluster object), and a
/// follower passes joins with a token to the leader.
#[derive(Clone)]
pub struct CaServer {
    local: Arc<ArcSwapOption<NodeCaService<StoreCa>>>,
    info: Arc<dyn ClusterInfo>,
    dial: Arc<dyn Connector>,
}

impl std::fmt::Debug for CaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaServer")
            .field("ready", &self.local.load().is_some())
            .finish()
    }
}

impl CaServer {
    /// A CA server, not serving until [`CaServer::set_ca`].
    pub fn new(info: Arc<dyn ClusterInfo>, dial: Arc<dyn Connector>) -> Self {
        CaServer {
            local: Arc::new(ArcSwapOption::empty()),
            info,
            dial,
        }
    }

    /// Starts signing with `ca`, recording in `records`.
    pub fn set_ca(&self, ca: Arc<ClusterCa>, records: StoreCa) {
        self.local
            .store(Some(Arc::new(NodeCaService::new(ca, Arc::new(records)))));
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> NodeCaServer<Self> {
        NodeCaServer::new(self)
    }

    /// A client of the leader's CA service.
    fn leader(&self) -> Result<NodeCaClient<tonic::transport::Channel>, Status> {
        let addr = self
            .info
            .leader_addr()
            .ok_or_else(|| Status::unavailable("no leader elected; retry"))?;
        let channel = self
            .dial
            .channel(&addr)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(NodeCaClient::new(channel))
    }

    fn service(&self) -> Result<Arc<NodeCaService<StoreCa>>, Status> {
        self.local.load_full().ok_or_else(|| {
            Status::unavailable("this manager is still loading the cluster CA; retry")
        })
    }
}

#[tonic::async_trait]
impl NodeCa for CaServer {
    async fn get_root_ca_certificate(
        &self,
        req: Request<GetRootCaCertificateRequest>,
    ) -> Result<Response<GetRootCaCertificateResponse>, Status> {
        self.service()?.get_root_ca_certificate(req).await
    }

    async fn issue_node_certificate(
        &self,
        req: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        if let Some(node) = req.metadata().get(RENEW_FOR) {
            // A renewal a follower authenticated and passed on.
            swarm_pki::auth::require_manager(&req)?;
            let node_id = node
                .to_str()
                .map_err(|_| Status::invalid_argument("malformed node id"))?
                .to_string();
            if !self.info.is_leader() {
                return Err(Status::unavailable("leadership is changing; retry shortly"));
            }
            let csr = req.into_inner().csr;
            return self
                .service()?
                .renew(&node_id, csr)
                .await
                .map(Response::new);
        }
        if self.info.is_leader() {
            return self.service()?.issue_node_certificate(req).await;
        }
        // Nodes and their certificates are recorded in the store: the
        // leader issues.
        if req.get_ref().token.is_empty() {
            let identity = swarm_pki::auth::peer_identity(&req)?;
            let node = tonic::metadata::MetadataValue::try_from(identity.node_id.as_str())
                .map_err(|_| Status::invalid_argument("malformed node id"))?;
            let mut forwarded = Request::new(req.into_inner());
            forwarded.metadata_mut().insert(RENEW_FOR, node);
            return self.leader()?.issue_node_certificate(forwarded).await;
        }
        self.leader()?
            .issue_node_certificate(req.into_inner())
            .await
    }

    async fn node_certificate_status(
        &self,
        req: Request<NodeCertificateStatusRequest>,
    ) -> Result<Response<NodeCertificateStatusResponse>, Status> {
        if !self.info.is_leader()
            && let Ok(mut leader) = self.leader()
        {
            match leader.node_certificate_status(req.get_ref().clone()).await {
                Err(s) if s.code() == tonic::Code::Unavailable => {}
                answer => return answer,
            }
        }
        self.service()?.node_certificate_status(req).await
    }
}
