//! Node registration and liveness: an agent that opens a session makes its
//! node READY; one that misses its heartbeats is marked DOWN.

use swarm_api::v1::{
    Node, NodeAvailability, NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus,
};
use swarm_store::{Store, StoreError};

use crate::retry::update_retry;

/// Records a registering node: its description, READY, and the address it
/// connects from. Creates the node if the CA has not (e.g. a manager's own
/// agent right after bootstrap).
pub(crate) async fn register(
    store: &Store,
    node_id: &str,
    role: NodeRole,
    description: Option<NodeDescription>,
    addr: String,
) -> Result<Node, StoreError> {
    let n = update_retry(store, |tx| {
        let status = NodeStatus {
            state: NodeState::Ready.into(),
            message: String::new(),
            addr: addr.clone(),
        };
        match tx.get::<Node>(node_id) {
            Some(existing) => {
                let mut n = (*existing).clone();
                if description.is_some() {
                    n.description.clone_from(&description);
                }
                n.status = Some(status);
                tx.update(n)
            }
            None => tx.create(Node {
                id: node_id.to_string(),
                spec: Some(NodeSpec {
                    desired_role: role.into(),
                    availability: NodeAvailability::Active.into(),
                    ..Default::default()
                }),
                description: description.clone(),
                status: Some(status),
                role: role.into(),
                ..Default::default()
            }),
        }
    })
    .await?;
    Ok((*n).clone())
}

/// Marks nodes DOWN (they missed their heartbeats).
pub(crate) async fn mark_down(
    store: &Store,
    nodes: &[String],
    message: &str,
) -> Result<(), StoreError> {
    store
        .batch(|b| {
            for id in nodes {
                let _ = b.update(|tx| {
                    let Some(node) = tx.get::<Node>(id) else {
                        return Ok(());
                    };
                    if node
                        .status
                        .as_ref()
                        .is_some_and(|s| s.state() == NodeState::Down)
                    {
                        return Ok(());
                    }
                    let mut n = (*node).clone();
                    let addr = n
                        .status
                        .as_ref()
                        .map(|s| s.addr.clone())
                        .unwrap_or_default();
                    n.status = Some(NodeStatus {
                        state: NodeState::Down.into(),
                        message: message.to_string(),
                        addr,
                    });
                    tx.update(n).map(drop)
                });
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map(drop)
}
