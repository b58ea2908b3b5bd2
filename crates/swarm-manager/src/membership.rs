//! Managers joining and leaving raft, and the role manager: promotions and
//! demotions requested on nodes are carried out on the leader, and each
//! manager node's raft status is kept current.

use std::time::Duration;

use swarm_api::v1::raft_membership_client::RaftMembershipClient;
use swarm_api::v1::raft_membership_server::{RaftMembership, RaftMembershipServer};
use swarm_api::v1::*;
use swarm_pki::require_manager;
use swarm_raft::{Connector, RaftNode, RaftNodeError};
use swarm_store::Store;
use tonic::{Request, Response, Status};

use crate::dispatcher::ClusterInfo;
use crate::info::Info;
use crate::retry::update_retry;

/// The `RaftMembership` service of a manager (manager certificates only).
#[derive(Clone)]
pub struct MembershipService {
    pub(crate) raft: RaftNode,
    pub(crate) store: Store,
    pub(crate) info: Info,
    pub(crate) dial: std::sync::Arc<dyn Connector>,
}

impl std::fmt::Debug for MembershipService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipService").finish_non_exhaustive()
    }
}

impl MembershipService {
    /// The tonic server for this service.
    pub fn into_server(self) -> RaftMembershipServer<Self> {
        RaftMembershipServer::new(self)
    }

    fn leader(&self) -> Result<RaftMembershipClient<tonic::transport::Channel>, Status> {
        let addr = self
            .info
            .leader_addr()
            .ok_or_else(|| Status::unavailable("no leader elected; retry"))?;
        let channel = self
            .dial
            .channel(&addr)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(RaftMembershipClient::new(channel))
    }
}

fn raft_status(e: RaftNodeError) -> Status {
    match e {
        RaftNodeError::Refused(_) | RaftNodeError::NotLeader { .. } => {
            Status::failed_precondition(e.to_string())
        }
        RaftNodeError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        other => Status::unavailable(other.to_string()),
    }
}

#[tonic::async_trait]
impl RaftMembership for MembershipService {
    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let caller = require_manager(&req)?;
        let mut body = req.into_inner();
        if body.node_id.is_empty() {
            body.node_id = caller.node_id;
        }
        if body.addr.is_empty() {
            return Err(Status::invalid_argument(
                "the joining manager's address is required",
            ));
        }
        if !self.info.is_leader() {
            return self.leader()?.join(body).await;
        }
        let (raft_id, members) = self.raft.join(&body.addr).await.map_err(raft_status)?;
        let status = ManagerStatus {
            raft_id,
            addr: body.addr.clone(),
            leader: false,
            reachability: Reachability::Unknown.into(),
        };
        update_retry(&self.store, |tx| {
            let Some(n) = tx.get::<Node>(&body.node_id) else {
                return Ok(());
            };
            let mut n = (*n).clone();
            n.manager_status = Some(status.clone());
            n.role = NodeRole::Manager.into();
            tx.update(n).map(drop)
        })
        .await
        .map_err(crate::error::store_status)?;
        Ok(Response::new(JoinResponse { raft_id, members }))
    }

    async fn leave(&self, req: Request<LeaveRequest>) -> Result<Response<LeaveResponse>, Status> {
        require_manager(&req)?;
        let body = req.into_inner();
        if !self.info.is_leader() {
            return self.leader()?.leave(body).await;
        }
        self.raft.remove(body.raft_id).await.map_err(raft_status)?;
        Ok(Response::new(LeaveResponse {}))
    }
}

/// The role manager (leader only): runs until aborted.
pub async fn role_manager(store: Store, raft: RaftNode) {
    loop {
        if let Err(e) = reconcile_roles(&store, &raft).await {
            tracing::debug!(error = %e, "role reconciliation will be retried");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn reconcile_roles(store: &Store, raft: &RaftNode) -> Result<(), String> {
    let status = raft.status().map_err(|e| e.to_string())?;
    // Runs every half second over every node: a worker that stays a worker
    // (nearly all of them) costs a comparison, not a copy.
    for node in store.view().all::<Node>() {
        let desired = node.spec.as_ref().map_or(node.role(), |s| s.desired_role());
        if desired == NodeRole::Worker && node.role() == NodeRole::Worker {
            continue;
        }
        let raft_id = node
            .manager_status
            .as_ref()
            .map(|m| m.raft_id)
            .filter(|id| *id != 0);
        let mut next_role = node.role;
        let mut next_status = None;
        match (desired, node.role()) {
            (NodeRole::Manager, NodeRole::Worker) => {
                // Its next certificate says manager; its agent restarts as
                // a manager and joins raft.
                next_role = NodeRole::Manager.into();
            }
            (NodeRole::Worker, NodeRole::Manager) => {
                if let Some(id) = raft_id
                    && (status.voters.contains_key(&id) || status.learners.contains_key(&id))
                {
                    raft.remove(id)
                        .await
                        .map_err(|e| format!("demoting {}: {e}", node.id))?;
                }
                next_role = NodeRole::Worker.into();
                next_status = Some(None);
            }
            (NodeRole::Manager, NodeRole::Manager) => {
                if let (Some(id), Some(ms)) = (raft_id, node.manager_status.as_ref()) {
                    let mut ms = ms.clone();
                    ms.leader = status.leader == Some(id);
                    let member = status.voters.contains_key(&id);
                    ms.reachability = if member {
                        Reachability::Reachable
                    } else {
                        Reachability::Unreachable
                    }
                    .into();
                    next_status = Some(Some(ms));
                }
            }
            _ => {}
        }
        let next_status = next_status.unwrap_or_else(|| node.manager_status.clone());
        if next_role != node.role || next_status != node.manager_status {
            let next_status = &next_status;
            update_retry(store, |tx| {
                let Some(cur) = tx.get::<Node>(&node.id) else {
                    return Ok(());
                };
                let mut n = (*cur).clone();
                n.role = next_role;
                n.manager_status.clone_from(next_status);
                tx.update(n).map(drop)
            })
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
