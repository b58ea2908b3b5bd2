//! Nodes: inspect, list, update (availability, labels, role), remove.

use swarm_api::v1::*;
use swarm_api::validate::validate_node_spec;
use tonic::Status;

use super::filters::matches;
use super::{ControlService, Fail, Local};

fn is_manager(n: &Node) -> bool {
    n.role() == NodeRole::Manager
        || n.spec
            .as_ref()
            .is_some_and(|s| s.desired_role() == NodeRole::Manager)
}

impl ControlService {
    pub(crate) fn get_node_local(&self, req: GetNodeRequest) -> Local<GetNodeResponse> {
        let n = self
            .store
            .view()
            .lookup::<Node>(&req.node_id)
            .map_err(Fail::from)?;
        Ok(GetNodeResponse {
            node: Some((*n).clone()),
        })
    }

    pub(crate) fn list_nodes_local(&self, req: ListNodesRequest) -> Local<ListNodesResponse> {
        let nodes = self
            .store
            .view()
            .all::<Node>()
            .iter()
            .filter(|n| {
                let annotations = n.spec.as_ref().and_then(|s| s.annotations.as_ref());
                let by_name = match (req.filters.as_ref(), n.description.as_ref()) {
                    // Nodes are named by hostname when the spec has no name.
                    (Some(f), Some(d)) if annotations.is_none_or(|a| a.name.is_empty()) => {
                        let a = Annotations {
                            name: d.hostname.clone(),
                            labels: annotations.map(|a| a.labels.clone()).unwrap_or_default(),
                        };
                        matches(Some(f), &n.id, Some(&a))
                    }
                    (f, _) => matches(f, &n.id, annotations),
                };
                by_name && (req.roles.is_empty() || req.roles.contains(&n.role))
            })
            .map(|n| (**n).clone())
            .collect();
        Ok(ListNodesResponse { nodes })
    }

    pub(crate) async fn update_node_local(
        &self,
        req: UpdateNodeRequest,
    ) -> Local<UpdateNodeResponse> {
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("a node spec is required"))?;
        validate_node_spec(&spec).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let node = self
            .store
            .update(|tx| {
                let current = tx.get::<Node>(&req.node_id).ok_or_else(|| {
                    Fail::Status(Status::not_found(format!("node {} not found", req.node_id)))
                })?;
                let demoting = is_manager(&current) && spec.desired_role() == NodeRole::Worker;
                if demoting {
                    let managers = tx.all::<Node>().iter().filter(|n| is_manager(n)).count();
                    if managers <= 1 {
                        return Err(Fail::Status(Status::failed_precondition(
                            "attempting to demote the last manager of the swarm",
                        )));
                    }
                }
                let mut n = (*current).clone();
                n.meta.get_or_insert_with(Default::default).version = req.node_version;
                n.spec = Some(spec.clone());
                tx.update(n).map_err(Fail::from)
            })
            .await?;
        Ok(UpdateNodeResponse {
            node: Some(self.committed(&node.id)?),
        })
    }

    pub(crate) async fn remove_node_local(
        &self,
        req: RemoveNodeRequest,
    ) -> Local<RemoveNodeResponse> {
        self.store
            .update(|tx| {
                let n = tx.lookup::<Node>(&req.node_id).map_err(Fail::from)?;
                if is_manager(&n) {
                    return Err(Fail::Status(Status::failed_precondition(format!(
                        "node {} is a cluster manager and a member of the raft cluster: demote it before removing it",
                        n.id
                    ))));
                }
                let ready = n.status.as_ref().is_some_and(|s| s.state() == NodeState::Ready);
                if ready && !req.force {
                    return Err(Fail::Status(Status::failed_precondition(format!(
                        "node {} is not down and can't be removed (use force to remove it anyway)",
                        n.id
                    ))));
                }
                tx.delete::<Node>(&n.id).map_err(Fail::from)?;
                // Its certificate is refused from now on, on every manager.
                if let Some(cluster) = tx.all::<Cluster>().first() {
                    let mut c = (**cluster).clone();
                    if !c.removed_nodes.contains(&n.id) {
                        c.removed_nodes.push(n.id.clone());
                        tx.update(c).map_err(Fail::from)?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(RemoveNodeResponse {})
    }
}
