//! The dispatcher: agents' sessions, heartbeats, assignments and status
//! reports, served over mutual TLS (worker or manager certificates).
//!
//! Only the raft leader dispatches: a follower answers
//! `FAILED_PRECONDITION` with the leader's address in the response
//! metadata key [`LEADER_ADDR_KEY`], and agents move there. When a manager
//! becomes leader, nodes that were ready get twice the usual grace period
//! to reconnect before they are marked down.

mod assignments;
mod config;
mod heartbeat;
pub(crate) mod network_view;
mod nodes;
mod period;
mod sessions;
mod status;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use parking_lot::Mutex;
use swarm_api::v1::dispatcher_server::{Dispatcher as DispatcherRpc, DispatcherServer};
use swarm_api::v1::*;
use swarm_pki::auth::peer_info;
use swarm_pki::require_worker_or_manager;
use swarm_store::{AnyObject, Event, Kind, Store, WatchFilter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub use config::{DispatcherConfig, HEARTBEAT_ANSWER_EVERY};

use assignments::{AssignTx, Fanout, FanoutCmd};
use sessions::Sessions;
use status::Report;

/// Response metadata key carrying the leader's address on a follower's
/// refusal.
pub const LEADER_ADDR_KEY: &str = "swarm-leader-addr";

/// What the dispatcher needs to know about the managers.
pub trait ClusterInfo: Send + Sync + 'static {
    /// True while this manager is the raft leader.
    fn is_leader(&self) -> bool;
    /// The leader's address, if known.
    fn leader_addr(&self) -> Option<String>;
    /// The managers agents may connect to (the leader weighted highest).
    fn managers(&self) -> Vec<WeightedPeer>;
    /// The trusted root certificates (PEM).
    fn root_ca_pem(&self) -> Vec<u8>;
}

/// A follower's refusal: `FAILED_PRECONDITION`, with the leader's address
/// (when known) in the metadata key [`LEADER_ADDR_KEY`].
pub(crate) fn not_leader(info: &dyn ClusterInfo) -> Status {
    let leader = info.leader_addr();
    let mut status = Status::failed_precondition(match &leader {
        Some(a) => format!("this manager is not the leader; the leader is at {a}"),
        None => "this manager is not the leader and no leader is known".to_string(),
    });
    if let Some(a) = leader.and_then(|a| a.parse().ok()) {
        status.metadata_mut().insert(LEADER_ADDR_KEY, a);
    }
    status
}

struct Active {
    fanout: mpsc::Sender<FanoutCmd>,
    status: mpsc::Sender<Report>,
    tasks: Vec<JoinHandle<()>>,
}

struct Inner {
    store: Store,
    config: DispatcherConfig,
    period: Arc<period::Period>,
    counters: Arc<crate::metrics::Counters>,
    info: Arc<dyn ClusterInfo>,
    sessions: Sessions,
    active: Mutex<Option<Active>>,
}

/// The dispatcher of one manager. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("sessions", &self.inner.sessions.len())
            .finish()
    }
}

type Streaming<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Dispatcher {
    /// A dispatcher over `store`; it serves only once [`Dispatcher::start_leading`] ran.
    pub fn new(store: Store, config: DispatcherConfig, info: Arc<dyn ClusterInfo>) -> Self {
        Dispatcher {
            inner: Arc::new(Inner {
                store,
                period: Arc::new(period::Period::new(config.heartbeat_period)),
                config,
                counters: Arc::default(),
                info,
                sessions: Sessions::default(),
                active: Mutex::new(None),
            }),
        }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> DispatcherServer<Self> {
        DispatcherServer::new(self)
    }

    /// The manager's counters (heartbeats here; the scheduler loop shares them).
    pub fn counters(&self) -> Arc<crate::metrics::Counters> {
        self.inner.counters.clone()
    }

    /// Number of open agent sessions.
    pub fn sessions(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Starts dispatching (this manager became leader).
    pub fn start_leading(&self) {
        let mut active = self.inner.active.lock();
        if active.is_some() {
            return;
        }
        let cfg = &self.inner.config;
        // Nodes that were ready get twice the grace period to come back.
        let deadline = Instant::now() + self.inner.grace() * 2;
        for n in self.inner.store.view().all::<Node>() {
            if n.status
                .as_ref()
                .is_some_and(|s| s.state() == NodeState::Ready)
            {
                self.inner.sessions.expect(&n.id, deadline);
            }
        }
        let (fanout_tx, fanout_rx) = mpsc::channel(1024);
        let (status_tx, status_rx) = mpsc::channel(cfg.status_batch_limit.max(1) * 2);
        let store = self.inner.store.clone();
        let tasks = vec![
            tokio::spawn(Fanout::new(store.clone()).run(fanout_rx, cfg.network_flush_interval)),
            tokio::spawn(status::writer(
                store.clone(),
                status_rx,
                cfg.status_flush_interval,
                cfg.status_batch_limit,
            )),
            tokio::spawn(monitor(Arc::downgrade(&self.inner))),
            tokio::spawn(node_updates(Arc::downgrade(&self.inner))),
            tokio::spawn(self.inner.period.clone().follow(store.clone())),
        ];
        *active = Some(Active {
            fanout: fanout_tx,
            status: status_tx,
            tasks,
        });
    }

    /// Stops dispatching (leadership lost): sessions end, agents move to
    /// the new leader.
    pub fn stop_leading(&self) {
        if let Some(active) = self.inner.active.lock().take() {
            for t in active.tasks {
                t.abort();
            }
        }
        self.inner.sessions.clear();
    }

    fn refuse_if_follower(&self) -> Result<(), Status> {
        if self.inner.active.lock().is_some() && self.inner.info.is_leader() {
            return Ok(());
        }
        Err(not_leader(self.inner.info.as_ref()))
    }

    fn channels(&self) -> Result<(mpsc::Sender<FanoutCmd>, mpsc::Sender<Report>), Status> {
        let active = self.inner.active.lock();
        let a = active
            .as_ref()
            .ok_or_else(|| Status::unavailable("dispatcher is stopping"))?;
        Ok((a.fanout.clone(), a.status.clone()))
    }

    fn session_message(&self, session_id: &str, node: Node) -> SessionMessage {
        SessionMessage {
            session_id: session_id.to_string(),
            node: Some(node),
            managers: self.inner.info.managers(),
            network_bootstrap_keys: Vec::new(),
            root_ca: self.inner.info.root_ca_pem(),
        }
    }
}

/// The longest the down-marking monitor sleeps.
const MONITOR_MAX_SLEEP: std::time::Duration = std::time::Duration::from_millis(500);
/// The shortest: deadlines within it of each other are handled together.
const MONITOR_MIN_SLEEP: std::time::Duration = std::time::Duration::from_millis(20);

/// Marks nodes down when their heartbeats stop: wakes when the first
/// deadline falls due (at least every [`MONITOR_MAX_SLEEP`], and at most
/// every [`MONITOR_MIN_SLEEP`], so that nodes due together go in one
/// write).
async fn monitor(inner: std::sync::Weak<Inner>) {
    loop {
        let wait = match inner.upgrade() {
            Some(i) => i
                .sessions
                .next_due()
                .map_or(MONITOR_MAX_SLEEP, |at| {
                    at.saturating_duration_since(Instant::now())
                })
                .clamp(MONITOR_MIN_SLEEP, MONITOR_MAX_SLEEP),
            None => return,
        };
        tokio::time::sleep(wait).await;
        let Some(inner) = inner.upgrade() else { return };
        let expired = inner.sessions.take_expired(Instant::now());
        if !expired.is_empty() {
            tracing::info!(
                nodes = expired.len(),
                "nodes missed their heartbeats: marking them down"
            );
            if let Err(e) = nodes::mark_down(&inner.store, &expired, "heartbeat failure").await {
                tracing::warn!(error = %e, "marking nodes down failed");
            }
        }
    }
}

/// Tells agents when their node object changes (role, availability).
async fn node_updates(inner: std::sync::Weak<Inner>) {
    let mut watcher = match inner.upgrade() {
        Some(i) => i
            .store
            .watch(WatchFilter::all().kinds([Kind::Node]).commits(false)),
        None => return,
    };
    while let Ok(event) = watcher.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let Event::Updated {
            new: AnyObject::Node(node),
            old: AnyObject::Node(old),
        } = event
        else {
            continue;
        };
        if node.spec == old.spec && node.role == old.role {
            continue;
        }
        let Some(stream) = inner.sessions.stream(&node.id) else {
            continue;
        };
        let msg = SessionMessage {
            session_id: String::new(),
            node: Some((*node).clone()),
            managers: inner.info.managers(),
            network_bootstrap_keys: Vec::new(),
            root_ca: inner.info.root_ca_pem(),
        };
        let _ = stream.try_send(Ok(msg));
    }
}

impl Inner {
    /// How long a node may stay silent before it is marked down, at the
    /// period in force.
    fn grace(&self) -> std::time::Duration {
        self.period.get() * self.config.grace_multiplier + self.config.heartbeat_jitter
    }
}

/// The period to ask of an agent: the one in force plus some jitter.
fn jittered(period: std::time::Duration, cfg: &DispatcherConfig) -> std::time::Duration {
    let extra = cfg.heartbeat_jitter.as_millis() as u64;
    let add = if extra == 0 {
        0
    } else {
        rand::random::<u64>() % extra
    };
    period + std::time::Duration::from_millis(add)
}

#[tonic::async_trait]
impl DispatcherRpc for Dispatcher {
    type SessionStream = Streaming<SessionMessage>;
    type AssignmentsStream = Streaming<AssignmentsMessage>;
    type HeartbeatStreamStream = heartbeat::BeatStream;

    async fn session(
        &self,
        req: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let identity = require_worker_or_manager(&req)?;
        self.refuse_if_follower()?;
        let cfg = &self.inner.config;
        let node_id = identity.node_id.clone();
        if !self.inner.sessions.allow_registration(
            &node_id,
            Instant::now(),
            cfg.registrations_per_window,
            cfg.registration_window,
        ) {
            return Err(Status::resource_exhausted(format!(
                "node {node_id} registered more than {} times in {:?}: wait before retrying",
                cfg.registrations_per_window, cfg.registration_window
            )));
        }
        let addr = peer_info(&req)
            .and_then(|p| p.remote_addr())
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let body = req.into_inner();
        let node = nodes::register(
            &self.inner.store,
            &node_id,
            identity.role,
            body.description,
            addr,
        )
        .await
        .map_err(crate::error::store_status)?;
        let (tx, rx) = mpsc::channel(16);
        let session_id =
            self.inner
                .sessions
                .open(&node_id, tx.clone(), Instant::now() + self.inner.grace());
        let first = self.session_message(&session_id, node);
        tx.try_send(Ok(first))
            .map_err(|_| Status::internal("session stream closed"))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let identity = require_worker_or_manager(&req)?;
        let answer = self.accept_beat(&identity.node_id, &req.get_ref().session_id)?;
        Ok(Response::new(answer))
    }

    async fn heartbeat_stream(
        &self,
        req: Request<tonic::Streaming<HeartbeatRequest>>,
    ) -> Result<Response<Self::HeartbeatStreamStream>, Status> {
        let peer = peer_info(&req)
            .cloned()
            .ok_or(swarm_pki::auth::AuthError::NotTls)?;
        peer.check()?;
        self.refuse_if_follower()?;
        Ok(Response::new(self.beat_stream(peer, req.into_inner())))
    }

    async fn update_task_status(
        &self,
        req: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let identity = require_worker_or_manager(&req)?;
        self.refuse_if_follower()?;
        let body = req.into_inner();
        self.inner
            .sessions
            .check(&identity.node_id, &body.session_id)?;
        let (_, status) = self.channels()?;
        for u in body.updates {
            let Some(s) = u.status else { continue };
            let report = Report {
                node: identity.node_id.clone(),
                task_id: u.task_id,
                status: s,
            };
            status
                .send(report)
                .await
                .map_err(|_| Status::unavailable("dispatcher is stopping"))?;
        }
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    async fn assignments(
        &self,
        req: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let identity = require_worker_or_manager(&req)?;
        self.refuse_if_follower()?;
        let body = req.into_inner();
        self.inner
            .sessions
            .check(&identity.node_id, &body.session_id)?;
        let (fanout, _) = self.channels()?;
        let (tx, rx): (AssignTx, _) = mpsc::channel(256);
        fanout
            .send(FanoutCmd::Attach {
                node: identity.node_id,
                tx,
            })
            .await
            .map_err(|_| Status::unavailable("dispatcher is stopping"))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
