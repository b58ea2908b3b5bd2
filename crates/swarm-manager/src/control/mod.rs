//! The control API: what `swarmctl` and embedding products call.
//!
//! Served on the manager's mutual-TLS listener (manager certificates only)
//! and on its local unix socket. Every call is answered by the leader, as
//! in SwarmKit: a follower forwards reads and writes to it (one hop), so a
//! client never reads state older than its own last write, whichever
//! manager it talks to. Writes are validated, versioned and committed
//! through raft. When no leader can be reached, a follower still answers
//! reads from its own store (possibly behind), so a cluster that lost its
//! quorum can be inspected.

mod cluster;
mod filters;
mod networks;
mod nodes;
mod references;
mod secrets;
mod services;
mod tasks;

use std::sync::Arc;

use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::control_server::{Control, ControlServer};
use swarm_api::v1::*;
use swarm_raft::Connector;
use swarm_store::{Store, StoreError};
use tonic::{Request, Response, Status};

use crate::auth::authorize_control;
use crate::dispatcher::ClusterInfo;
use crate::error::{not_leader, store_status};

/// Metadata key set on a request a follower forwarded to the leader.
const FORWARDED: &str = "swarm-forwarded";

/// Why a local attempt at a write did not finish.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A definite answer for the client.
    Status(Status),
    /// This manager is not the leader; the leader's address if known.
    NotLeader(Option<String>),
}

impl From<Status> for Fail {
    fn from(s: Status) -> Self {
        Fail::Status(s)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        match not_leader(&e) {
            Some(addr) => Fail::NotLeader(addr),
            None => Fail::Status(store_status(e)),
        }
    }
}

pub(crate) type Local<T> = Result<T, Fail>;

/// The control API service.
#[derive(Clone)]
pub struct ControlService {
    pub(crate) store: Store,
    dial: Arc<dyn Connector>,
    info: Arc<dyn ClusterInfo>,
}

impl std::fmt::Debug for ControlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlService").finish_non_exhaustive()
    }
}

impl ControlService {
    /// A control API over `store`, forwarding calls to the leader that
    /// `info` names through `dial` (mutual TLS with this manager's
    /// certificate).
    pub fn new(store: Store, dial: Arc<dyn Connector>, info: Arc<dyn ClusterInfo>) -> Self {
        ControlService { store, dial, info }
    }

    /// Where to forward a call: the leader's address, unless this manager
    /// leads, the request was already forwarded, or no leader is known.
    fn forward_target(&self, forwarded: bool) -> Option<String> {
        if forwarded || self.info.is_leader() {
            return None;
        }
        self.info.leader_addr()
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> ControlServer<Self> {
        ControlServer::new(self)
    }

    /// The committed version of an object just written (a write returns
    /// once applied here, so this manager's store has it).
    pub(crate) fn committed<T: swarm_store::Object>(&self, id: &str) -> Result<T, Fail> {
        self.store
            .view()
            .get::<T>(id)
            .map(|o| (*o).clone())
            .ok_or_else(|| Fail::Status(Status::not_found(format!("{} {id} not found", T::KIND))))
    }

    fn leader_client(
        &self,
        addr: Option<String>,
    ) -> Result<ControlClient<tonic::transport::Channel>, Status> {
        let addr = addr
            .ok_or_else(|| Status::unavailable("no leader is elected right now; retry shortly"))?;
        let channel = self
            .dial
            .channel(&addr)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(ControlClient::new(channel))
    }
}

/// A write: run it here on the leader, or forward it to the leader once.
macro_rules! write {
    ($self:ident, $req:ident, $local:ident, $method:ident) => {{
        authorize_control(&$req)?;
        let forwarded = $req.metadata().contains_key(FORWARDED);
        let body = $req.into_inner();
        // A follower forwards at once: its own store may be behind, and
        // checking versions against it would refuse fresh updates.
        let local = match $self.forward_target(forwarded) {
            Some(addr) => Err(Fail::NotLeader(Some(addr))),
            None => $self.$local(body.clone()).await,
        };
        match local {
            Ok(v) => Ok(Response::new(v)),
            Err(Fail::Status(s)) => Err(s),
            Err(Fail::NotLeader(_)) if forwarded => {
                Err(Status::unavailable("leadership is changing; retry shortly"))
            }
            Err(Fail::NotLeader(addr)) => {
                let mut client = $self.leader_client(addr)?;
                let mut req = Request::new(body);
                req.metadata_mut()
                    .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
                client.$method(req).await
            }
        }
    }};
}

/// A read: forwarded to the leader (one hop) from a follower, answered
/// here on the leader, or here on a follower that cannot reach one.
macro_rules! read {
    ($self:ident, $req:ident, $local:ident, $method:ident) => {{
        authorize_control(&$req)?;
        let forwarded = $req.metadata().contains_key(FORWARDED);
        let body = $req.into_inner();
        if let Some(addr) = $self.forward_target(forwarded) {
            let mut req = Request::new(body.clone());
            req.metadata_mut()
                .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
            match $self.leader_client(Some(addr)) {
                Ok(mut client) => match client.$method(req).await {
                    Err(s) if s.code() == tonic::Code::Unavailable => {}
                    answer => return answer,
                },
                Err(_) => {}
            }
        }
        $self.$local(body).map(Response::new).map_err(|f| match f {
            Fail::Status(s) => s,
            Fail::NotLeader(_) => Status::unavailable("not the leader"),
        })
    }};
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn get_node(
        &self,
        req: Request<GetNodeRequest>,
    ) -> Result<Response<GetNodeResponse>, Status> {
        read!(self, req, get_node_local, get_node)
    }
    async fn list_nodes(
        &self,
        req: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        read!(self, req, list_nodes_local, list_nodes)
    }
    async fn update_node(
        &self,
        req: Request<UpdateNodeRequest>,
    ) -> Result<Response<UpdateNodeResponse>, Status> {
        write!(self, req, update_node_local, update_node)
    }
    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        write!(self, req, remove_node_local, remove_node)
    }

    async fn get_task(
        &self,
        req: Request<GetTaskRequest>,
    ) -> Result<Response<GetTaskResponse>, Status> {
        read!(self, req, get_task_local, get_task)
    }
    async fn list_tasks(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        read!(self, req, list_tasks_local, list_tasks)
    }
    async fn remove_task(
        &self,
        req: Request<RemoveTaskRequest>,
    ) -> Result<Response<RemoveTaskResponse>, Status> {
        write!(self, req, remove_task_local, remove_task)
    }

    async fn create_service(
        &self,
        req: Request<CreateServiceRequest>,
    ) -> Result<Response<CreateServiceResponse>, Status> {
        write!(self, req, create_service_local, create_service)
    }
    async fn get_service(
        &self,
        req: Request<GetServiceRequest>,
    ) -> Result<Response<GetServiceResponse>, Status> {
        read!(self, req, get_service_local, get_service)
    }
    async fn update_service(
        &self,
        req: Request<UpdateServiceRequest>,
    ) -> Result<Response<UpdateServiceResponse>, Status> {
        write!(self, req, update_service_local, update_service)
    }
    async fn remove_service(
        &self,
        req: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        write!(self, req, remove_service_local, remove_service)
    }
    async fn list_services(
        &self,
        req: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        read!(self, req, list_services_local, list_services)
    }

    async fn create_network(
        &self,
        req: Request<CreateNetworkRequest>,
    ) -> Result<Response<CreateNetworkResponse>, Status> {
        write!(self, req, create_network_local, create_network)
    }
    async fn get_network(
        &self,
        req: Request<GetNetworkRequest>,
    ) -> Result<Response<GetNetworkResponse>, Status> {
        read!(self, req, get_network_local, get_network)
    }
    async fn list_networks(
        &self,
        req: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        read!(self, req, list_networks_local, list_networks)
    }
    async fn remove_network(
        &self,
        req: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        write!(self, req, remove_network_local, remove_network)
    }

    async fn get_cluster(
        &self,
        req: Request<GetClusterRequest>,
    ) -> Result<Response<GetClusterResponse>, Status> {
        read!(self, req, get_cluster_local, get_cluster)
    }
    async fn list_clusters(
        &self,
        req: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        read!(self, req, list_clusters_local, list_clusters)
    }
    async fn update_cluster(
        &self,
        req: Request<UpdateClusterRequest>,
    ) -> Result<Response<UpdateClusterResponse>, Status> {
        write!(self, req, update_cluster_local, update_cluster)
    }

    async fn create_secret(
        &self,
        req: Request<CreateSecretRequest>,
    ) -> Result<Response<CreateSecretResponse>, Status> {
        write!(self, req, create_secret_local, create_secret)
    }
    async fn get_secret(
        &self,
        req: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        read!(self, req, get_secret_local, get_secret)
    }
    async fn update_secret(
        &self,
        req: Request<UpdateSecretRequest>,
    ) -> Result<Response<UpdateSecretResponse>, Status> {
        write!(self, req, update_secret_local, update_secret)
    }
    async fn list_secrets(
        &self,
        req: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        read!(self, req, list_secrets_local, list_secrets)
    }
    async fn remove_secret(
        &self,
        req: Request<RemoveSecretRequest>,
    ) -> Result<Response<RemoveSecretResponse>, Status> {
        write!(self, req, remove_secret_local, remove_secret)
    }

    async fn create_config(
        &self,
        req: Request<CreateConfigRequest>,
    ) -> Result<Response<CreateConfigResponse>, Status> {
        write!(self, req, create_config_local, create_config)
    }
    async fn get_config(
        &self,
        req: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        read!(self, req, get_config_local, get_config)
    }
    async fn update_config(
        &self,
        req: Request<UpdateConfigRequest>,
    ) -> Result<Response<UpdateConfigResponse>, Status> {
        write!(self, req, update_config_local, update_config)
    }
    async fn list_configs(
        &self,
        req: Request<ListConfigsRequest>,
    ) -> Result<Response<ListConfigsResponse>, Status> {
        read!(self, req, list_configs_local, list_configs)
    }
    async fn remove_config(
        &self,
        req: Request<RemoveConfigRequest>,
    ) -> Result<Response<RemoveConfigResponse>, Status> {
        write!(self, req, remove_config_local, remove_config)
    }
}
