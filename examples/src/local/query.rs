//! Reading a local cluster's state through a manager's control API.

use std::collections::BTreeMap;
use std::path::Path;

use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::{
    ListFilters, ListNodesRequest, ListServicesRequest, ListTasksRequest, Node, NodeState, Service,
    Task, TaskState,
};
use tonic::transport::Channel;

use super::LocalError;

/// A control API client on one manager's local socket.
#[derive(Debug, Clone)]
pub struct Api {
    control: ControlClient<Channel>,
}

impl Api {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Api, LocalError> {
        let channel = swarm_manager::local::local_channel(path)
            .await
            .map_err(|e| LocalError::Io {
                what: format!("connecting to {}", path.display()),
                source: std::io::Error::other(e),
            })?;
        Ok(Api {
            control: ControlClient::new(channel),
        })
    }

    /// The raw client, for calls this wrapper lacks.
    pub fn control(&self) -> ControlClient<Channel> {
        self.control.clone()
    }

    /// Every node.
    pub async fn nodes(&self) -> Result<Vec<Node>, LocalError> {
        Ok(self
            .control
            .clone()
            .list_nodes(ListNodesRequest::default())
            .await?
            .into_inner()
            .nodes)
    }

    /// The node reporting `hostname`.
    pub async fn node_by_hostname(&self, hostname: &str) -> Result<Option<Node>, LocalError> {
        Ok(self
            .nodes()
            .await?
            .into_iter()
            .find(|n| self::hostname(n) == hostname))
    }

    /// The host name of the raft leader, when there is one.
    pub async fn leader(&self) -> Result<Option<String>, LocalError> {
        Ok(self
            .nodes()
            .await?
            .iter()
            .find(|n| n.manager_status.as_ref().is_some_and(|m| m.leader))
            .map(|n| hostname(n).to_string()))
    }

    /// The service called `name`.
    pub async fn service(&self, name: &str) -> Result<Option<Service>, LocalError> {
        let services = self
            .control
            .clone()
            .list_services(ListServicesRequest {
                filters: Some(ListFilters {
                    names: vec![name.to_string()],
                    ..ListFilters::default()
                }),
            })
            .await?
            .into_inner()
            .services;
        Ok(services.into_iter().next())
    }

    /// Every task of the service called `name` (none when it does not
    /// exist).
    pub async fn tasks(&self, name: &str) -> Result<Vec<Task>, LocalError> {
        let Some(service) = self.service(name).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .control
            .clone()
            .list_tasks(ListTasksRequest {
                service_ids: vec![service.id],
                ..ListTasksRequest::default()
            })
            .await?
            .into_inner()
            .tasks)
    }
}

/// A node's reported host name.
pub fn hostname(n: &Node) -> &str {
    n.description.as_ref().map_or("", |d| d.hostname.as_str())
}

/// True when the node is READY.
pub fn is_ready(n: &Node) -> bool {
    n.status.as_ref().map(|s| s.state()) == Some(NodeState::Ready)
}

/// True when the task runs and should.
pub fn is_running(t: &Task) -> bool {
    t.status.as_ref().map(|s| s.state()) == Some(TaskState::Running)
        && t.desired_state() == TaskState::Running
}

/// Running tasks per node host name.
pub type Placement = BTreeMap<String, usize>;

/// Where the running tasks among `tasks` are, by host name.
pub fn running_by_node(tasks: &[Task], nodes: &[Node]) -> Placement {
    let names: BTreeMap<&str, &str> = nodes.iter().map(|n| (n.id.as_str(), hostname(n))).collect();
    let mut out = Placement::new();
    for t in tasks.iter().filter(|t| is_running(t)) {
        let host = names.get(t.node_id.as_str()).copied().unwrap_or("?");
        *out.entry(host.to_string()).or_default() += 1;
    }
    out
}
