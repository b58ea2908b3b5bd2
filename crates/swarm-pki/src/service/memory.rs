//! An in-memory [`NodeCaStore`] for tests and examples.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use swarm_api::v1::{Certificate, NodeAvailability, NodeRole};

use crate::revocation::Revocation;
use crate::token::JoinTokens;

use super::{NewNode, NodeCaStore, NodeRecord, StoreError};

#[derive(Debug, Clone)]
struct MemNode {
    role: NodeRole,
    availability: NodeAvailability,
    certificate: Option<Certificate>,
}

/// Nodes, tokens and removed ids in memory.
#[derive(Debug)]
pub struct MemoryCaStore {
    tokens: RwLock<JoinTokens>,
    nodes: RwLock<HashMap<String, MemNode>>,
    removed: RwLock<HashMap<String, ()>>,
    token_reads: AtomicU64,
}

impl MemoryCaStore {
    /// A store with `tokens` and no nodes.
    pub fn new(tokens: JoinTokens) -> Self {
        MemoryCaStore {
            tokens: RwLock::new(tokens),
            nodes: RwLock::new(HashMap::new()),
            removed: RwLock::new(HashMap::new()),
            token_reads: AtomicU64::new(0),
        }
    }

    /// The current tokens.
    pub fn tokens(&self) -> JoinTokens {
        self.tokens.read().clone()
    }

    /// Replaces the tokens (rotation, re-binding to a new root).
    pub fn set_tokens(&self, tokens: JoinTokens) {
        *self.tokens.write() = tokens;
    }

    /// Adds a node directly (the first manager, which bootstraps itself).
    pub fn add_node(&self, node_id: &str, role: NodeRole) {
        self.nodes.write().insert(
            node_id.to_string(),
            MemNode {
                role,
                availability: NodeAvailability::Active,
                certificate: None,
            },
        );
    }

    /// Sets the role a node's next certificate gets (promote/demote).
    pub fn set_role(&self, node_id: &str, role: NodeRole) -> bool {
        match self.nodes.write().get_mut(node_id) {
            Some(node) => {
                node.role = role;
                true
            }
            None => false,
        }
    }

    /// Removes a node: its certificate is refused from now on.
    pub fn remove_node(&self, node_id: &str) {
        self.nodes.write().remove(node_id);
        self.removed.write().insert(node_id.to_string(), ());
    }

    /// Ids and roles of the nodes.
    pub fn nodes(&self) -> Vec<(String, NodeRole)> {
        self.nodes
            .read()
            .iter()
            .map(|(id, n)| (id.clone(), n.role))
            .collect()
    }

    /// How many times the service read the tokens: once per join attempt
    /// that reached token checking.
    pub fn join_attempts(&self) -> u64 {
        self.token_reads.load(Ordering::Relaxed)
    }

    /// The availability a node joined with.
    pub fn availability(&self, node_id: &str) -> Option<NodeAvailability> {
        self.nodes.read().get(node_id).map(|n| n.availability)
    }
}

impl Revocation for MemoryCaStore {
    fn is_removed(&self, node_id: &str) -> bool {
        self.removed.read().contains_key(node_id)
    }
}

impl NodeCaStore for MemoryCaStore {
    async fn join_tokens(&self) -> Result<JoinTokens, StoreError> {
        self.token_reads.fetch_add(1, Ordering::Relaxed);
        Ok(self.tokens.read().clone())
    }

    async fn create_node(&self, node: NewNode) -> Result<(), StoreError> {
        let mut nodes = self.nodes.write();
        if nodes.contains_key(&node.node_id) || self.is_removed(&node.node_id) {
            return Err(StoreError::Exists(node.node_id));
        }
        nodes.insert(
            node.node_id,
            MemNode {
                role: node.role,
                availability: node.availability,
                certificate: Some(node.certificate),
            },
        );
        Ok(())
    }

    async fn node(&self, node_id: &str) -> Result<Option<NodeRecord>, StoreError> {
        Ok(self.nodes.read().get(node_id).map(|n| NodeRecord {
            role: n.role,
            certificate: n.certificate.clone(),
        }))
    }

    async fn record_certificate(
        &self,
        node_id: &str,
        certificate: Certificate,
    ) -> Result<(), StoreError> {
        match self.nodes.write().get_mut(node_id) {
            Some(node) => {
                node.certificate = Some(certificate);
                Ok(())
            }
            None => Err(StoreError::Failed(format!("node {node_id} not found"))),
        }
    }
}
