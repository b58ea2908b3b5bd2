//! [`Manager`]: one manager of a cluster, built with [`ManagerBuilder`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;

use swarm_api::v1::raft_membership_client::RaftMembershipClient;
use swarm_api::v1::*;
use swarm_pki::{
    ClusterCa, CredentialStore, JoinOptions, JoinToken, JoinTokens, NodeCredentials, NodeIdentity,
    NodeKey, NodeTls, RootCa, ServerTlsBuilder,
};
use swarm_raft::{Connector, RaftConfig, RaftNode, RaftNodeBuilder};
use swarm_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;

use crate::ca::{CaServer, Revoked, StoreCa};
use crate::control::ControlService;
use crate::dispatcher::{Dispatcher, DispatcherConfig};
use crate::error::ManagerError;
use crate::health::HealthService;
use crate::info::RaftInfo;
use crate::leadership::{LeaderStart, LeaderWork};
use crate::logbroker::LogBrokerService;
use crate::membership::MembershipService;
use crate::scheduler_loop::SchedulerFactory;
use crate::state::ManagerState;
use crate::stoppable::Stoppable;
use crate::transport::MtlsConnector;

/// How long a starting manager waits for the cluster to be usable.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of a manager. `start` inits a new cluster, joins one (with a
/// manager token) or restarts from the state directory.
pub struct ManagerBuilder {
    state_dir: PathBuf,
    listen: SocketAddr,
    advertise: Option<String>,
    control_socket: Option<PathBuf>,
    join: Option<(String, String)>,
    promoted: Option<Vec<String>>,
    raft: RaftConfig,
    dispatcher: DispatcherConfig,
    scheduler: SchedulerFactory,
    force_new_cluster: bool,
    metrics: Option<SocketAddr>,
    leader_extra: Option<LeaderStart>,
    availability: NodeAvailability,
}

impl ManagerBuilder {
    /// A manager keeping its state in `state_dir` (created 0700).
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ManagerBuilder {
            state_dir: state_dir.into(),
            listen: SocketAddr::from(([0, 0, 0, 0], 4242)),
            advertise: None,
            control_socket: None,
            join: None,
            promoted: None,
            raft: RaftConfig::default(),
            dispatcher: DispatcherConfig::default(),
            scheduler: Arc::new(|| Box::new(swarm_scheduler::ClusterScheduler::new())),
            force_new_cluster: false,
            metrics: None,
            leader_extra: None,
            availability: NodeAvailability::Active,
        }
    }

    /// Address the gRPC API listens on (every service; port 0 picks one).
    pub fn listen_addr(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Address other nodes reach this manager at (default: the listen address).
    pub fn advertise_addr(mut self, addr: impl Into<String>) -> Self {
        self.advertise = Some(addr.into());
        self
    }

    /// Serve the control API on a unix socket too (for a local CLI).
    pub fn control_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.control_socket = Some(path.into());
        self
    }

    /// Become a manager of the cluster this node already belongs to as a
    /// worker that was promoted: the state directory holds the node's
    /// certificate, renewed with the manager role (the agent renews it when
    /// the managers report the promotion), and the manager joins raft
    /// through the first of `managers` that answers. Used only when the
    /// state directory holds no manager yet; a certificate that still
    /// says worker is refused with [`ManagerError::NotPromoted`].
    pub fn promoted(mut self, managers: Vec<String>) -> Self {
        self.promoted = Some(managers);
        self
    }

    /// Join the cluster of the manager at `addr` with a manager join token
    /// (ignored when the state directory already holds a manager).
    pub fn join(mut self, addr: impl Into<String>, token: impl Into<String>) -> Self {
        self.join = Some((addr.into(), token.into()));
        self
    }

    /// Raft timings and sizes.
    pub fn raft_config(mut self, config: RaftConfig) -> Self {
        self.raft = config;
        self
    }

    /// Dispatcher timings.
    pub fn dispatcher_config(mut self, config: DispatcherConfig) -> Self {
        self.dispatcher = config;
        self
    }

    /// The scheduler a leader uses (default: SwarmKit's spread).
    pub fn scheduler(mut self, factory: SchedulerFactory) -> Self {
        self.scheduler = factory;
        self
    }

    /// Start a new one-manager cluster from this manager's data (its raft
    /// peers are lost for good).
    pub fn force_new_cluster(mut self, yes: bool) -> Self {
        self.force_new_cluster = yes;
        self
    }

    /// Serve Prometheus metrics (text) over HTTP on this address.
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics = Some(addr);
        self
    }

    /// Availability this node starts with when it creates a cluster.
    pub fn availability(mut self, availability: NodeAvailability) -> Self {
        self.availability = availability;
        self
    }

    /// More leader-only work (started and stopped with leadership).
    pub fn leader_work(mut self, start: LeaderStart) -> Self {
        self.leader_extra = Some(start);
        self
    }

    /// Starts the manager.
    pub async fn start(self) -> Result<Manager, ManagerError> {
        start(self).await
    }
}

/// A running manager.
pub struct Manager {
    node_id: String,
    cluster_id: String,
    addr: String,
    store: Store,
    raft: RaftNode,
    tls: NodeTls,
    dispatcher: Dispatcher,
    control_socket: Option<PathBuf>,
    tasks: Vec<JoinHandle<()>>,
    /// Cuts the connections the servers accepted.
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("node_id", &self.node_id)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Manager {
    /// This manager's node id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The address others reach this manager at.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The replicated store (read it; write through the control API).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The raft member.
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// This node's TLS identity (an agent on the same node uses it).
    pub fn tls(&self) -> &NodeTls {
        &self.tls
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The local control socket, if served.
    pub fn control_socket(&self) -> Option<&Path> {
        self.control_socket.as_deref()
    }

    /// The join tokens (worker, manager), from the replicated cluster object.
    pub fn join_tokens(&self) -> Option<JoinTokens> {
        let view = self.store.view();
        let c = view.all::<Cluster>().into_iter().next()?;
        JoinTokens::from_proto(c.root_ca.as_ref()?.join_tokens.as_ref()?).ok()
    }

    /// Stops the manager: its servers, leader work and raft member. The
    /// state directory stays.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        self.dispatcher.stop_leading();
        self.raft.shutdown().await;
        if let Some(p) = &self.control_socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ManagerError + '_ {
    move |source| ManagerError::State {
        path: path.to_path_buf(),
        source,
    }
}

fn pki(e: impl std::fmt::Display) -> ManagerError {
    ManagerError::Pki(e.to_string())
}

/// Creates the first manager's identity, CA and tokens.
fn init_identity(dir: &Path) -> Result<(ManagerState, ClusterCa, JoinTokens), ManagerError> {
    let root = RootCa::generate(SystemTime::now()).map_err(pki)?;
    let cluster_id = swarm_api::id::new_id();
    let ca = ClusterCa::new(&cluster_id, root.clone()).map_err(pki)?;
    let tokens = JoinTokens::generate(root.digest(), &mut rand::rng());
    let node_id = swarm_api::id::new_id();
    let key = NodeKey::generate().map_err(pki)?;
    let issued = ca
        .issue_for_key(&key, &node_id, NodeRole::Manager)
        .map_err(pki)?;
    let creds = NodeCredentials::from_issued(key, &issued).map_err(pki)?;
    CredentialStore::new(dir.join("certificates"))
        .save(&creds, &ca.trusted_roots())
        .map_err(pki)?;
    let raft_id = loop {
        let id: u64 = rand::random();
        if id != 0 {
            break id;
        }
    };
    Ok((
        ManagerState {
            node_id,
            raft_id,
            cluster_id,
        },
        ca,
        tokens,
    ))
}

fn load_tls(dir: &Path) -> Result<NodeTls, ManagerError> {
    let stored = CredentialStore::new(dir.join("certificates"))
        .load()
        .map_err(pki)?
        .ok_or_else(|| {
            ManagerError::Pki(format!(
                "no certificate in {}",
                dir.join("certificates").display()
            ))
        })?;
    NodeTls::new(swarm_pki::Enrollment {
        credentials: stored.credentials,
        roots: stored.roots,
    })
    .map_err(pki)
}

async fn start(b: ManagerBuilder) -> Result<Manager, ManagerError> {
    std::fs::create_dir_all(&b.state_dir).map_err(io(&b.state_dir))?;
    set_private(&b.state_dir)?;
    let listener = TcpListener::bind(b.listen)
        .await
        .map_err(|source| ManagerError::Listen {
            addr: b.listen.to_string(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| ManagerError::Listen {
            addr: b.listen.to_string(),
            source,
        })?;
    let advertise = b.advertise.clone().unwrap_or_else(|| local.to_string());

    // Who am I: restart, first manager, or joining manager.
    let mut fresh: Option<(ClusterCa, JoinTokens)> = None;
    let state = match ManagerState::load(&b.state_dir)? {
        Some(s) => s,
        None => match (&b.join, &b.promoted) {
            (Some((addr, token)), _) => {
                join_identity(&b.state_dir, addr, token, &advertise, b.availability).await?
            }
            (None, Some(managers)) => promoted_identity(&b.state_dir, managers, &advertise).await?,
            (None, None) => {
                let (s, ca, tokens) = init_identity(&b.state_dir)?;
                fresh = Some((ca, tokens));
                s
            }
        },
    };
    let tls = load_tls(&b.state_dir)?;
    let connector: Arc<dyn Connector> = Arc::new(MtlsConnector::new(tls.clone()));

    if b.force_new_cluster {
        RaftNode::force_new_cluster(
            &b.state_dir.join(crate::state::RAFT_DIR),
            state.raft_id,
            &advertise,
        )?;
    }
    let store = Store::new();
    let raft = RaftNodeBuilder::new(
        state.raft_id,
        advertise.clone(),
        b.state_dir.join(crate::state::RAFT_DIR),
        store.clone(),
        connector.clone(),
    )
    .config(b.raft.clone())
    .start()
    .await?;
    store.set_proposer(Some(Box::new(raft.proposer())));

    let info = Arc::new(RaftInfo {
        raft: raft.clone(),
        store: store.clone(),
        trust: tls.trust.clone(),
    });
    let dispatcher = Dispatcher::new(store.clone(), b.dispatcher.clone(), info.clone());
    let revoked = Revoked::default();
    let ca_server = CaServer::new(info.clone(), connector.clone());
    let control = ControlService::new(store.clone(), connector.clone(), info.clone());
    let logs = LogBrokerService::new(store.clone(), info.clone(), connector.clone());
    let membership = MembershipService {
        raft: raft.clone(),
        store: store.clone(),
        info: info.clone(),
        dial: connector.clone(),
    };

    let server_tls = ServerTlsBuilder::new(tls.credentials.clone(), tls.trust.clone())
        .revocation(Arc::new(revoked.clone()))
        .build()
        .map_err(pki)?;
    let router = tonic::transport::Server::builder()
        .add_service(control.clone().into_server())
        .add_service(dispatcher.clone().into_server())
        .add_service(ca_server.clone().into_server())
        .add_service(InterceptedService::new(
            raft.raft_service(),
            crate::auth::manager_only,
        ))
        .add_service(InterceptedService::new(
            membership.into_server(),
            crate::auth::manager_only,
        ))
        .add_service(logs.logs_server())
        .add_service(logs.broker_server())
        .add_service(HealthService::new(info.clone()).into_server());
    // Connections are cut when the manager stops (see `stoppable`).
    let (stop, stopped) = watch::channel(false);
    let cut = stopped.clone();
    let incoming = server_tls
        .incoming(listener)
        .map(move |c| c.map(|io| Stoppable::new(io, cut.clone())));
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = router.serve_with_incoming(incoming).await {
            tracing::error!(error = %e, "manager gRPC server stopped");
        }
    })];

    if let Some((ca, tokens)) = &fresh {
        raft.bootstrap().await?;
        raft.wait_for_leader(READY_TIMEOUT).await?;
        seed_cluster(
            &store,
            &state,
            ca,
            tokens,
            &advertise,
            b.availability,
            b.dispatcher.heartbeat_period,
        )
        .await?;
    }
    state.save(&b.state_dir)?;

    // The CA (and the cluster) come from the replicated store.
    let cluster = wait_for_cluster(&store).await?;
    let root = cluster.root_ca.clone().unwrap_or_default();
    let (ca, _) = ClusterCa::from_proto(&cluster.id, &root, None, swarm_pki::clock::system_clock())
        .map_err(pki)?;
    ca_server.set_ca(Arc::new(ca), StoreCa::new(store.clone(), revoked.clone()));
    tasks.push(revoked.follow(&store));

    let work = LeaderWork {
        store: store.clone(),
        raft: raft.clone(),
        dispatcher: dispatcher.clone(),
        logs: logs.clone(),
        scheduler: b.scheduler.clone(),
        extra: b.leader_extra.clone(),
    };
    tasks.push(tokio::spawn(crate::leadership::run(work)));

    if let Some(path) = &b.control_socket {
        tasks.push(serve_local(path, control.clone(), logs.clone(), stopped)?);
    }
    if let Some(addr) = b.metrics {
        tasks.push(
            crate::metrics::serve(addr, store.clone(), raft.clone(), dispatcher.clone()).await?,
        );
    }
    Ok(Manager {
        node_id: state.node_id,
        cluster_id: state.cluster_id,
        addr: advertise,
        store,
        raft,
        tls,
        dispatcher,
        control_socket: b.control_socket,
        tasks,
        stop,
    })
}

fn set_private(dir: &Path) -> Result<(), ManagerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Joins with a manager token: a certificate from the CA, then a raft id
/// from the leader.
async fn join_identity(
    dir: &Path,
    addr: &str,
    token: &str,
    advertise: &str,
    availability: NodeAvailability,
) -> Result<ManagerState, ManagerError> {
    let token = JoinToken::parse(token)
        .map_err(|e| ManagerError::Join(format!("invalid join token: {e}")))?;
    let options = JoinOptions {
        store: Some(CredentialStore::new(dir.join("certificates"))),
        availability,
        ..JoinOptions::default()
    };
    let enrollment = swarm_pki::join(addr, &token, &options)
        .await
        .map_err(|e| ManagerError::Join(e.to_string()))?;
    let identity = enrollment.credentials.identity().clone();
    if identity.role != NodeRole::Manager {
        return Err(ManagerError::WorkerToken);
    }
    let tls = NodeTls::new(enrollment).map_err(pki)?;
    raft_join(tls, addr, advertise, identity).await
}

/// Joins raft through the manager at `addr` with this node's manager
/// certificate.
async fn raft_join(
    tls: NodeTls,
    addr: &str,
    advertise: &str,
    identity: NodeIdentity,
) -> Result<ManagerState, ManagerError> {
    let channel = MtlsConnector::new(tls)
        .channel(addr)
        .map_err(|e| ManagerError::Join(e.to_string()))?;
    let joined = RaftMembershipClient::new(channel)
        .join(JoinRequest {
            addr: advertise.to_string(),
            node_id: identity.node_id.clone(),
        })
        .await
        .map_err(|s| ManagerError::Join(format!("raft join refused: {}", s.message())))?
        .into_inner();
    Ok(ManagerState {
        node_id: identity.node_id,
        raft_id: joined.raft_id,
        cluster_id: identity.cluster_id,
    })
}

/// A promoted worker becomes a manager: its stored certificate must say
/// manager; it joins raft through the first manager that accepts.
async fn promoted_identity(
    dir: &Path,
    managers: &[String],
    advertise: &str,
) -> Result<ManagerState, ManagerError> {
    let tls = load_tls(dir)?;
    let identity = tls.credentials.current().identity().clone();
    if identity.role != NodeRole::Manager {
        return Err(ManagerError::NotPromoted(identity.node_id));
    }
    let mut last = ManagerError::Join("no manager address to join through".into());
    for addr in managers {
        match raft_join(tls.clone(), addr, advertise, identity.clone()).await {
            Ok(state) => return Ok(state),
            Err(e) => {
                tracing::warn!(manager = %addr, error = %e, "joining raft after promotion");
                last = e;
            }
        }
    }
    Err(last)
}

/// The objects of a new cluster: the cluster (CA, tokens, defaults), the
/// first manager's node, and the ingress network.
async fn seed_cluster(
    store: &Store,
    state: &ManagerState,
    ca: &ClusterCa,
    tokens: &JoinTokens,
    advertise: &str,
    availability: NodeAvailability,
    heartbeat_period: std::time::Duration,
) -> Result<(), ManagerError> {
    use swarm_api::defaults as d;
    let spec = ClusterSpec {
        annotations: Some(Annotations {
            name: d::CLUSTER_NAME.into(),
            ..Default::default()
        }),
        orchestration: Some(OrchestrationConfig {
            task_history_retention_limit: d::TASK_HISTORY_RETENTION,
        }),
        raft: Some(swarm_api::v1::RaftConfig {
            snapshot_interval: d::RAFT_SNAPSHOT_INTERVAL,
            keep_old_snapshots: 0,
            log_entries_for_slow_followers: d::RAFT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
            heartbeat_tick: d::RAFT_HEARTBEAT_TICK,
            election_tick: d::RAFT_ELECTION_TICK,
        }),
        dispatcher: Some(swarm_api::v1::DispatcherConfig {
            // The builder's period seeds the cluster; from then on the
            // cluster object is what every leader's dispatcher follows.
            heartbeat_period: Some(heartbeat_period.into()),
        }),
        ca_config: Some(CaConfig {
            node_cert_expiry: Some(d::NODE_CERT_EXPIRY.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cluster = Cluster {
        id: state.cluster_id.clone(),
        spec: Some(spec),
        root_ca: Some(ca.to_proto(tokens)),
        default_address_pool: vec![d::ADDRESS_POOL.into()],
        subnet_size: u32::from(d::SUBNET_SIZE),
        ..Default::default()
    };
    let node = Node {
        id: state.node_id.clone(),
        spec: Some(NodeSpec {
            desired_role: NodeRole::Manager.into(),
            availability: availability.into(),
            ..Default::default()
        }),
        role: NodeRole::Manager.into(),
        manager_status: Some(ManagerStatus {
            raft_id: state.raft_id,
            addr: advertise.to_string(),
            leader: true,
            reachability: Reachability::Reachable.into(),
        }),
        status: Some(NodeStatus {
            state: NodeState::Unknown.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ingress = Network {
        id: swarm_api::id::new_id(),
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: "ingress".into(),
                ..Default::default()
            }),
            driver_config: Some(Driver {
                name: "overlay".into(),
                ..Default::default()
            }),
            ingress: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    store
        .update(|tx| {
            tx.create(cluster)?;
            tx.create(node)?;
            tx.create(ingress).map(drop)
        })
        .await?;
    Ok(())
}

async fn wait_for_cluster(store: &Store) -> Result<Cluster, ManagerError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(c) = store.view().all::<Cluster>().into_iter().next() {
            return Ok((*c).clone());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ManagerError::Timeout(
                "the cluster object did not replicate to this manager".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The control API (and logs) on a unix socket, for a CLI on this host.
fn serve_local(
    path: &Path,
    control: ControlService,
    logs: LogBrokerService,
    stopped: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, ManagerError> {
    let _ = std::fs::remove_file(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|source| ManagerError::Listen {
        addr: path.display().to_string(),
        source,
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    let router = tonic::transport::Server::builder()
        .add_service(InterceptedService::new(
            control.into_server(),
            crate::auth::mark_local,
        ))
        .add_service(InterceptedService::new(
            logs.logs_server(),
            crate::auth::mark_local,
        ));
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener)
        .map(move |c| c.map(|io| Stoppable::new(io, stopped.clone())));
    Ok(tokio::spawn(async move {
        if let Err(e) = router.serve_with_incoming(incoming).await {
            tracing::error!(error = %e, "control socket server stopped");
        }
    }))
}
