//! What a node must know about a network it has tasks on: the services
//! reachable there and every task endpoint, on any node.

use swarm_api::v1::{Network, NetworkView, Node, ServiceEndpoint, Task, TaskEndpoint, TaskState};
use swarm_store::{By, ReadTx};

/// The data-path address other nodes reach `node` at.
pub(crate) fn node_addr(node: Option<&Node>) -> String {
    let Some(node) = node else {
        return String::new();
    };
    let dp = node
        .description
        .as_ref()
        .map(|d| d.data_path_addr.as_str())
        .unwrap_or("");
    if !dp.is_empty() {
        return dp.to_string();
    }
    node.status
        .as_ref()
        .map(|s| s.addr.clone())
        .unwrap_or_default()
}

/// True for a task that should receive traffic and resolve in DNS.
pub(crate) fn serving(t: &Task) -> bool {
    t.state() == TaskState::Running && t.desired_state() == TaskState::Running
}

/// The endpoint of a task on a network, if it is attached and not over.
fn endpoint(view: &ReadTx, t: &Task, network_id: &str) -> Option<TaskEndpoint> {
    if t.state().is_terminal() || t.node_id.is_empty() {
        return None;
    }
    let att = t
        .networks
        .iter()
        .find(|a| a.network.as_ref().is_some_and(|n| n.id == network_id))?;
    if att.addresses.is_empty() {
        return None;
    }
    Some(TaskEndpoint {
        task_id: t.id.clone(),
        service_id: t.service_id.clone(),
        name: t.display_name(),
        aliases: att.aliases.clone(),
        addresses: att.addresses.clone(),
        node_id: t.node_id.clone(),
        node_addr: node_addr(view.get::<Node>(&t.node_id).as_deref()),
        serving: serving(t),
    })
}

/// Builds the view of `network_id` from a consistent store version.
pub(crate) fn build(view: &ReadTx, network_id: &str) -> Option<NetworkView> {
    let network = view.get::<Network>(network_id)?;
    let ingress = network.spec.as_ref().is_some_and(|s| s.ingress);
    let mut services = Vec::new();
    let candidates = if ingress {
        view.all::<swarm_api::v1::Service>()
    } else {
        view.find::<swarm_api::v1::Service>(By::NetworkId(network_id))
            .unwrap_or_default()
    };
    for s in candidates {
        let Some(spec) = s.spec.as_ref() else {
            continue;
        };
        let endpoint = s.endpoint.as_ref();
        let vip = endpoint
            .and_then(|e| e.virtual_ips.iter().find(|v| v.network_id == network_id))
            .map(|v| v.addr.clone())
            .unwrap_or_default();
        if ingress && vip.is_empty() {
            // On the ingress network only services that publish ports.
            continue;
        }
        let aliases = spec
            .task
            .as_ref()
            .and_then(|t| t.networks.iter().find(|n| n.target == network_id))
            .map(|n| n.aliases.clone())
            .unwrap_or_default();
        services.push(ServiceEndpoint {
            service_id: s.id.clone(),
            name: spec
                .annotations
                .as_ref()
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            aliases,
            mode: spec.endpoint.as_ref().map_or(0, |e| e.mode),
            vip,
            ports: endpoint.map(|e| e.ports.clone()).unwrap_or_default(),
        });
    }
    let tasks = view
        .find::<Task>(By::NetworkId(network_id))
        .unwrap_or_default()
        .iter()
        .filter_map(|t| endpoint(view, t, network_id))
        .collect();
    Some(NetworkView {
        network: Some((*network).clone()),
        services,
        tasks,
    })
}
