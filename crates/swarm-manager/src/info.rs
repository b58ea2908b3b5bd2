//! The cluster as this manager sees it: leader, managers, roots.

use std::sync::Arc;

use swarm_api::v1::{Node, NodeRole, WeightedPeer};
use swarm_pki::{ClusterTrust, bundle_pem};
use swarm_raft::RaftNode;
use swarm_store::Store;

use crate::dispatcher::ClusterInfo;

/// [`ClusterInfo`] over the raft member, the store and the trust roots.
#[derive(Clone)]
pub struct RaftInfo {
    pub(crate) raft: RaftNode,
    pub(crate) store: Store,
    pub(crate) trust: ClusterTrust,
}

impl std::fmt::Debug for RaftInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftInfo")
            .field("raft", &self.raft)
            .finish()
    }
}

impl ClusterInfo for RaftInfo {
    fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    fn leader_addr(&self) -> Option<String> {
        let s = self.raft.status().ok()?;
        let leader = s.leader?;
        s.voters
            .get(&leader)
            .or_else(|| s.learners.get(&leader))
            .cloned()
    }

    fn managers(&self) -> Vec<WeightedPeer> {
        let Ok(s) = self.raft.status() else {
            return Vec::new();
        };
        let nodes = self.store.view().all::<Node>();
        let node_of = |raft_id: u64| {
            nodes
                .iter()
                .find(|n| {
                    n.role() == NodeRole::Manager
                        && n.manager_status
                            .as_ref()
                            .is_some_and(|m| m.raft_id == raft_id)
                })
                .map(|n| n.id.clone())
                .unwrap_or_default()
        };
        s.voters
            .iter()
            .map(|(id, addr)| WeightedPeer {
                node_id: node_of(*id),
                addr: addr.clone(),
                weight: if Some(*id) == s.leader { 10 } else { 1 },
            })
            .collect()
    }

    fn root_ca_pem(&self) -> Vec<u8> {
        bundle_pem(&self.trust.roots()).into_bytes()
    }
}

/// Shared handle.
pub(crate) type Info = Arc<RaftInfo>;
