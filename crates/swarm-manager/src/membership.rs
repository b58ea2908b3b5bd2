//! Managers joining and leaving raft, and the role manager: promotions and
//! demotions requested on nodes are carried out on the leader, and each
//! manager node's raft status is kept current.

use std::collections::HashSet;
use std::time::Duration;

use swarm_api::v1::raft_membership_client::RaftMembershipClient;
use swarm_api::v1::raft_membership_server::{RaftMembership, RaftMembershipServer};
use swarm_api::v1::*;
use swarm_pki::require_manager;
use swarm_raft::{Connector, RaftNode, RaftNodeError};
use swarm_store::{By, Event, Kind, Store, WatchError, WatchFilter, Watcher};
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

/// How often the role manager reconciles.
const ROLE_PERIOD: Duration = Duration::from_millis(500);

/// The role manager (leader only): runs until aborted (or the store
/// closes).
///
/// Every 500 ms (`ROLE_PERIOD`) it looks at the nodes that may need work: the
/// managers (from the store's role index) and the workers asked to become
/// managers (followed from node events, so the thousands of workers that
/// stay workers are not scanned twice a second).
pub async fn role_manager(store: Store, raft: RaftNode) {
    let (mut promoting, mut watcher) = follow_promotions(&store);
    let mut tick = tokio::time::interval(ROLE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = reconcile_roles(&store, &raft, &mut promoting).await {
                    tracing::debug!(error = %e, "role reconciliation will be retried");
                }
            }
            event = watcher.recv() => match event {
                Ok(Event::Created(o) | Event::Updated { new: o, .. }) => {
                    if let Some(n) = o.downcast::<Node>()
                        && wants_promotion(n)
                    {
                        promoting.insert(n.id.clone());
                    }
                }
                Ok(_) => {}
                Err(WatchError::Lagged) => (promoting, watcher) = follow_promotions(&store),
                Err(_) => return,
            },
        }
    }
}

/// The workers asked to become managers now, and a watcher of the node
/// changes after that.
fn follow_promotions(store: &Store) -> (HashSet<String>, Watcher) {
    store.view_and_watch(WatchFilter::all().kinds([Kind::Node]).commits(false), |v| {
        v.all::<Node>()
            .iter()
            .filter(|n| wants_promotion(n))
            .map(|n| n.id.clone())
            .collect()
    })
}

fn desired_role(node: &Node) -> NodeRole {
    node.spec.as_ref().map_or(node.role(), |s| s.desired_role())
}

/// A worker whose desired role is manager.
fn wants_promotion(node: &Node) -> bool {
    desired_role(node) == NodeRole::Manager && node.role() == NodeRole::Worker
}

/// Reconciles the managers and the workers in `promoting` (which loses
/// those that no longer want a promotion).
async fn reconcile_roles(
    store: &Store,
    raft: &RaftNode,
    promoting: &mut HashSet<String>,
) -> Result<(), String> {
    let status = raft.status().map_err(|e| e.to_string())?;
    let (nodes, gone) = {
        let view = store.view();
        let mut nodes = view
            .find::<Node>(By::Role(NodeRole::Manager))
            .map_err(|e| e.to_string())?;
        let mut gone = Vec::new();
        for id in promoting.iter() {
            match view.get::<Node>(id) {
                Some(n) if wants_promotion(&n) => nodes.push(n),
                _ => gone.push(id.clone()),
            }
        }
        (nodes, gone)
    };
    for id in gone {
        promoting.remove(&id);
    }
    for node in nodes {
        let desired = desired_role(&node);
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
