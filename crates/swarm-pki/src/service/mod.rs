//! The `NodeCa` gRPC service (`swarm.v1.NodeCa`): how nodes get and renew
//! certificates from a manager.
//!
//! [`NodeCaService`] is generic over a [`NodeCaStore`], the small trait the
//! manager implements over its replicated store; [`MemoryCaStore`] is an
//! in-memory implementation for tests and examples.
//!
//! | call | needs a client certificate | does |
//! |---|---|---|
//! | `GetRootCaCertificate` | no | serves the trusted roots (PEM) |
//! | `IssueNodeCertificate` with a token | no | checks the token (constant time), makes a node id, signs the CSR with the token's role, creates the node |
//! | `IssueNodeCertificate` without a token | yes (any role) | renews: signs the CSR for the caller's node id with the role the store holds for it (a promotion yields a manager certificate) |
//! | `NodeCertificateStatus` | no | the issued certificate of a node id (waits briefly while pending) |

mod memory;
mod server;

use std::future::Future;

use swarm_api::v1::{Certificate, NodeAvailability, NodeRole};

use crate::revocation::Revocation;
use crate::token::JoinTokens;

pub use memory::MemoryCaStore;
pub use server::NodeCaService;

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Try again (another manager, later): e.g. this manager is not the
    /// raft leader or has no quorum. Maps to `UNAVAILABLE`.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The node id already exists. Maps to `ALREADY_EXISTS`.
    #[error("node {0} already exists")]
    Exists(String),
    /// Any other failure. Maps to `INTERNAL`.
    #[error("store failure: {0}")]
    Failed(String),
}

impl From<StoreError> for tonic::Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => tonic::Status::unavailable(e.to_string()),
            StoreError::Exists(_) => tonic::Status::already_exists(e.to_string()),
            StoreError::Failed(_) => tonic::Status::internal(e.to_string()),
        }
    }
}

/// A node created by a join.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNode {
    /// Its id (the CN of its certificate).
    pub node_id: String,
    /// The role its token granted.
    pub role: NodeRole,
    /// The availability it asked to start with.
    pub availability: NodeAvailability,
    /// Its first certificate (state `ISSUED`).
    pub certificate: Certificate,
}

/// What the CA needs to know about an existing node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    /// The role its next certificate gets: the desired role the operator
    /// set (promotion, demotion).
    pub role: NodeRole,
    /// Its certificate as last recorded.
    pub certificate: Option<Certificate>,
}

/// What the CA service reads and writes in the manager's store. The
/// [`Revocation`] supertrait says which nodes were removed.
///
/// Writes happen only after the certificate is signed, so a failed
/// signature never leaves a half-created node.
pub trait NodeCaStore: Revocation + 'static {
    /// The current join tokens.
    fn join_tokens(&self) -> impl Future<Output = Result<JoinTokens, StoreError>> + Send;

    /// Creates a node that joined with a token.
    fn create_node(&self, node: NewNode) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The node's record; `None` when unknown.
    fn node(
        &self,
        node_id: &str,
    ) -> impl Future<Output = Result<Option<NodeRecord>, StoreError>> + Send;

    /// Records a renewed certificate.
    fn record_certificate(
        &self,
        node_id: &str,
        certificate: Certificate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
