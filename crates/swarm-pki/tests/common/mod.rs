//! A real manager on loopback for the integration tests: cluster CA,
//! in-memory CA store, the `NodeCa` service and a small authorization probe
//! service (gRPC health: `Check` needs any node, `Watch` needs a manager),
//! served over the crate's mTLS listener.

#![allow(dead_code, reason = "each test file uses a part of the helpers")]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use futures::Stream;
use swarm_api::health::health_check_response::ServingStatus;
use swarm_api::health::health_server::{Health, HealthServer};
use swarm_api::health::{HealthCheckRequest, HealthCheckResponse};
use swarm_api::v1::NodeRole;
use swarm_pki::clock::SharedClock;
use swarm_pki::service::{MemoryCaStore, NodeCaService};
use swarm_pki::{
    ClusterCa, CredentialsHandle, JoinTokens, NodeCredentials, NodeKey, RootCa, ServerTlsBuilder,
    require_manager, require_worker_or_manager,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// Check: any node. Watch: managers only.
pub(crate) struct Probe;

#[tonic::async_trait]
impl Health for Probe {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        require_worker_or_manager(&request)?;
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        require_manager(&request)?;
        let item = HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(item)]))))
    }
}

/// A running manager.
pub(crate) struct Manager {
    pub(crate) addr: SocketAddr,
    pub(crate) ca: Arc<ClusterCa>,
    pub(crate) store: Arc<MemoryCaStore>,
    pub(crate) credentials: CredentialsHandle,
    pub(crate) node_id: String,
    server: JoinHandle<()>,
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Manager {
    pub(crate) async fn start(cluster_id: &str) -> Manager {
        let root = RootCa::generate(SystemTime::now()).unwrap();
        let ca = Arc::new(ClusterCa::new(cluster_id, root.clone()).unwrap());
        Self::start_with(ca).await
    }

    pub(crate) async fn start_with(ca: Arc<ClusterCa>) -> Manager {
        Self::start_with_clock(ca, swarm_pki::clock::system_clock()).await
    }

    /// A manager whose per-call checks read `clock`.
    pub(crate) async fn start_with_clock(ca: Arc<ClusterCa>, clock: SharedClock) -> Manager {
        let tokens = JoinTokens::generate(ca.signing_root().digest(), &mut rand::rng());
        let store = Arc::new(MemoryCaStore::new(tokens));
        let node_id = swarm_api::id::new_id();
        store.add_node(&node_id, NodeRole::Manager);
        let credentials = CredentialsHandle::new(issue(&ca, &node_id, NodeRole::Manager));
        let server_tls = ServerTlsBuilder::new(credentials.clone(), ca.trust())
            .revocation(store.clone())
            .clock(clock)
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = tonic::transport::Server::builder()
            .add_service(NodeCaService::new(ca.clone(), store.clone()).into_server())
            .add_service(HealthServer::new(Probe));
        let incoming = server_tls.incoming(listener);
        let server = tokio::spawn(async move {
            let _ = router.serve_with_incoming(incoming).await;
        });
        Manager {
            addr,
            ca,
            store,
            credentials,
            node_id,
            server,
        }
    }

    pub(crate) fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Re-issues the manager's own certificate with the CA's current root
    /// and swaps it in (as a manager does for itself).
    pub(crate) fn reissue_self(&self) {
        self.credentials
            .replace(issue(&self.ca, &self.node_id, NodeRole::Manager))
            .unwrap();
    }
}

/// Credentials for a fresh key, issued by `ca`.
pub(crate) fn issue(ca: &ClusterCa, node_id: &str, role: NodeRole) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let issued = ca.issue_for_key(&key, node_id, role).unwrap();
    NodeCredentials::from_issued(key, &issued).unwrap()
}
