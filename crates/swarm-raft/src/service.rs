//! The server side of the raft transport and of membership changes, as
//! tonic services to mount on the caller's server (and so behind the
//! caller's listener and TLS).

use openraft::raft::VoteRequest;
use swarm_api::v1::raft_membership_server::{RaftMembership, RaftMembershipServer};
use swarm_api::v1::raft_server::{Raft as RaftRpc, RaftServer};
use swarm_api::v1::{JoinRequest, JoinResponse, LeaveRequest, LeaveResponse, RaftPayload};
use tonic::{Request, Response, Status};

use crate::codec::{self, json};
use crate::error::RaftNodeError;
use crate::node::RaftNode;
use crate::types::NodeId;

/// Largest message the raft service accepts (a snapshot chunk plus room).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

impl RaftNode {
    /// The `Raft` gRPC service of this member.
    ///
    /// Serve it over connections with `TCP_NODELAY` set (with
    /// `serve_with_incoming`, set it on each accepted stream): replies are
    /// small writes, and Nagle's algorithm holds them back behind the
    /// peer's delayed acknowledgements (in the commit benchmark, 1,000
    /// writers went from about 24,000 to 39,000 commits/s).
    pub fn raft_service(&self) -> RaftServer<RaftService> {
        RaftServer::new(RaftService { node: self.clone() })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The `RaftMembership` gRPC service of this member (join, leave).
    pub fn membership_service(&self) -> RaftMembershipServer<MembershipService> {
        RaftMembershipServer::new(MembershipService { node: self.clone() })
    }
}

/// Serves raft messages from the other members.
#[derive(Debug, Clone)]
pub struct RaftService {
    node: RaftNode,
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn node_status(e: RaftNodeError) -> Status {
    match e {
        RaftNodeError::NotLeader { .. } => Status::failed_precondition(e.to_string()),
        RaftNodeError::Refused(_) => Status::failed_precondition(e.to_string()),
        RaftNodeError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        other => Status::unavailable(other.to_string()),
    }
}

impl RaftService {
    /// Drops messages the fault injection cuts.
    fn check_link(&self, from: NodeId) -> Result<(), Status> {
        if self.node.faults().allows(from, self.node.id()) {
            Ok(())
        } else {
            Err(Status::unavailable("link cut by fault injection"))
        }
    }
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = codec::decode_append(&req.into_inner().data).map_err(bad)?;
        self.check_link(rpc.vote.leader_id.node_id)?;
        let raft = self.node.raft().map_err(node_status)?;
        let res = raft.append_entries(rpc).await;
        Ok(Response::new(RaftPayload { data: json(&res) }))
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: VoteRequest<NodeId> =
            codec::from_json(&req.into_inner().data, "vote request").map_err(bad)?;
        let candidate = rpc.vote.leader_id.node_id;
        self.check_link(candidate)?;
        let raft = self.node.raft().map_err(node_status)?;
        // A member that was removed does not know it: its campaigns must not
        // disturb the cluster, so votes are only considered from members.
        let is_member = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&candidate)
            .is_some();
        if !is_member {
            return Err(Status::permission_denied(format!(
                "{candidate:x} is not a member of this cluster"
            )));
        }
        let res = raft.vote(rpc).await;
        Ok(Response::new(RaftPayload { data: json(&res) }))
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = codec::decode_snapshot_chunk(&req.into_inner().data).map_err(bad)?;
        self.check_link(rpc.vote.leader_id.node_id)?;
        let raft = self.node.raft().map_err(node_status)?;
        let res = raft.install_snapshot(rpc).await;
        Ok(Response::new(RaftPayload { data: json(&res) }))
    }

    async fn transfer_leader(
        &self,
        _req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.node.campaign().await.map_err(node_status)?;
        Ok(Response::new(RaftPayload { data: Vec::new() }))
    }
}

/// Serves join and leave requests; a follower passes them to the leader.
#[derive(Debug, Clone)]
pub struct MembershipService {
    node: RaftNode,
}

impl MembershipService {
    fn leader_addr(&self, leader: Option<NodeId>) -> Option<String> {
        let status = self.node.status().ok()?;
        let leader = leader?;
        status
            .voters
            .get(&leader)
            .or_else(|| status.learners.get(&leader))
            .cloned()
    }

    fn leader_client(
        &self,
        leader: Option<NodeId>,
    ) -> Result<
        swarm_api::v1::raft_membership_client::RaftMembershipClient<tonic::transport::Channel>,
        Status,
    > {
        let addr = self
            .leader_addr(leader)
            .ok_or_else(|| Status::unavailable("no leader known"))?;
        let channel = self
            .node
            .inner
            .connector
            .channel(&addr)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(swarm_api::v1::raft_membership_client::RaftMembershipClient::new(channel))
    }
}

#[tonic::async_trait]
impl RaftMembership for MembershipService {
    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let req = req.into_inner();
        if req.addr.is_empty() {
            return Err(Status::invalid_argument("an address is required"));
        }
        match self.node.join(&req.addr).await {
            Ok((raft_id, members)) => Ok(Response::new(JoinResponse { raft_id, members })),
            Err(RaftNodeError::NotLeader { leader }) => self.leader_client(leader)?.join(req).await,
            Err(e) => Err(node_status(e)),
        }
    }

    async fn leave(&self, req: Request<LeaveRequest>) -> Result<Response<LeaveResponse>, Status> {
        let req = req.into_inner();
        match self.node.remove(req.raft_id).await {
            Ok(()) => Ok(Response::new(LeaveResponse {})),
            Err(RaftNodeError::NotLeader { leader }) => {
                self.leader_client(leader)?.leave(req).await
            }
            Err(e) => Err(node_status(e)),
        }
    }
}
