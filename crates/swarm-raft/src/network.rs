//! The client side of the raft transport: openraft's network traits over
//! the gRPC `Raft` service, through an injected [`Connector`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use swarm_api::v1::RaftPayload;
use swarm_api::v1::raft_client::RaftClient;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::codec::{self, CodecError};
use crate::durable::{self, DurableEnd};
use crate::faults::Faults;
use crate::types::{Member, NodeId, TypeConfig};

/// Opens channels to other members. Inject one to choose the transport:
/// plain TCP ([`TcpConnector`]), mutual TLS (the manager's), or anything a
/// tonic `Channel` can run over.
pub trait Connector: Send + Sync + 'static {
    /// A channel to the member at `addr` (may connect lazily).
    fn channel(&self, addr: &str) -> Result<Channel, TransportError>;
}

/// Why a channel could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot reach {addr}: {reason}")]
pub struct TransportError {
    /// The address.
    pub addr: String,
    /// What failed.
    pub reason: String,
}

/// Plain TCP channels (`http://addr`), connected lazily. For tests and
/// networks secured otherwise; managers use mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct TcpConnector {
    /// Time allowed to establish a connection.
    pub connect_timeout: Option<Duration>,
}

impl Connector for TcpConnector {
    fn channel(&self, addr: &str) -> Result<Channel, TransportError> {
        let mut ep =
            Channel::from_shared(format!("http://{addr}")).map_err(|e| TransportError {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        ep = ep.connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(2)));
        ep = ep.tcp_nodelay(true);
        Ok(ep.connect_lazy())
    }
}

/// When each member last answered: the leader's view of who is reachable.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    last_ok: Mutex<HashMap<NodeId, Instant>>,
}

impl Reach {
    pub(crate) fn ok(&self, node: NodeId) {
        self.last_ok.lock().insert(node, Instant::now());
    }

    /// Whether `node` answered within `window`.
    pub(crate) fn recent(&self, node: NodeId, window: Duration) -> bool {
        self.last_ok
            .lock()
            .get(&node)
            .is_some_and(|t| t.elapsed() <= window)
    }
}

/// Makes a client per member for openraft.
pub(crate) struct Network {
    pub(crate) self_id: NodeId,
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) faults: Faults,
    pub(crate) reach: Arc<Reach>,
    /// The durable end of this member's log.
    pub(crate) durable: watch::Receiver<DurableEnd>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            self_id: self.self_id,
            target,
            addr: node.addr.clone(),
            connector: self.connector.clone(),
            client: None,
            faults: self.faults.clone(),
            reach: self.reach.clone(),
            durable: self.durable.clone(),
        }
    }
}

/// The connection to one member.
pub(crate) struct PeerClient {
    self_id: NodeId,
    target: NodeId,
    addr: String,
    connector: Arc<dyn Connector>,
    client: Option<RaftClient<Channel>>,
    faults: Faults,
    reach: Arc<Reach>,
    durable: watch::Receiver<DurableEnd>,
}

type Rpc<E = openraft::error::Infallible> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

impl PeerClient {
    fn client(&mut self) -> Result<RaftClient<Channel>, Unreachable> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let channel = self
            .connector
            .channel(&self.addr)
            .map_err(|e| Unreachable::new(&e))?;
        let client = RaftClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Sends one call and decodes the JSON `Result` it answers.
    async fn call<T, E>(
        &mut self,
        kind: RPCTypes,
        payload: Vec<u8>,
        option: &RPCOption,
    ) -> Result<T, Rpc<E>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if !self.faults.allows(self.self_id, self.target) {
            let why = std::io::Error::other("link cut by fault injection");
            return Err(RPCError::Unreachable(Unreachable::new(&why)));
        }
        if let Some(d) = self.faults.current_delay() {
            tokio::time::sleep(d).await;
        }
        let mut client = self.client().map_err(RPCError::Unreachable)?;
        let request = RaftPayload { data: payload };
        let ttl = option.hard_ttl();
        let call = async {
            match kind {
                RPCTypes::AppendEntries => client.append_entries(request).await,
                RPCTypes::Vote => client.vote(request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, call).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action: kind,
                    id: self.self_id,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            Ok(Err(status)) => {
                if status.code() == tonic::Code::Unavailable
                    || status.code() == tonic::Code::Unknown
                {
                    // Connection-level failure: drop the channel, back off.
                    self.client = None;
                    return Err(RPCError::Unreachable(Unreachable::new(&status)));
                }
                return Err(RPCError::Network(NetworkError::new(&status)));
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let decoded: Result<Result<T, RaftError<NodeId, E>>, CodecError> =
            codec::from_json(&reply.data, "reply");
        match decoded {
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
            Ok(Ok(v)) => {
                self.reach.ok(self.target);
                Ok(v)
            }
            Ok(Err(remote)) => {
                self.reach.ok(self.target);
                Err(RPCError::RemoteError(RemoteError::new(self.target, remote)))
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Rpc> {
        let mut rpc = rpc;
        // Followers apply what the leader says is committed: never an
        // entry the leader itself has not synced yet (see `durable`).
        rpc.leader_commit = durable::clamp(rpc.leader_commit, &self.durable.borrow());
        let payload = codec::encode_append(&rpc);
        self.call(RPCTypes::AppendEntries, payload, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Rpc<openraft::error::InstallSnapshotError>> {
        let payload = codec::encode_snapshot_chunk(&rpc);
        self.call(RPCTypes::InstallSnapshot, payload, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Rpc> {
        self.call(RPCTypes::Vote, codec::json(&rpc), &option).await
    }
}
