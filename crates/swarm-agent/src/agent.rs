//! The agent: credentials, the task manager and the dispatcher session,
//! with reconnection and certificate renewal, and the log publisher
//! beside the session.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use swarm_api::v1::{NodeAvailability, NodeDescription, NodeRole, TaskStatusUpdate};
use swarm_pki::renewal::{Renewal, plan_renewal};
use swarm_pki::{CredentialStore, Enrollment, JoinError, JoinOptions, JoinToken, NodeTls};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::error::AgentError;
use crate::exec::Executor;
use crate::exec::process::ProcessExecutor;
use crate::log_publisher::LogPublisher;
use crate::managers::{MANAGERS_FILE, Managers, load_remembered};
use crate::network::NetworkAttacher;
use crate::session::{SessionContext, note_redirect, run_session};
use crate::worker::{StatusReceiver, Worker};

/// Subdirectory of the state directory holding the node's key (0600),
/// certificate and trusted roots.
pub const CERTIFICATES_DIR: &str = "certificates";
/// File of the local task database in the state directory.
pub const TASK_DB_FILE: &str = "tasks.redb";
/// Subdirectory of the state directory where the default process
/// executor keeps task directories.
pub const TASKS_DIR: &str = "tasks";

/// Configures an [`Agent`].
#[derive(Clone)]
pub struct AgentBuilder {
    state_dir: PathBuf,
    managers: Vec<String>,
    join_token: Option<String>,
    executor: Option<Arc<dyn Executor>>,
    labels: BTreeMap<String, String>,
    hostname: Option<String>,
    data_path_addr: Option<String>,
    availability: NodeAvailability,
    backoff: (Duration, Duration),
    networking: Option<Arc<NetworkAttacher>>,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("state_dir", &self.state_dir)
            .field("managers", &self.managers)
            .field(
                "join_token",
                &self.join_token.as_ref().map(|_| "<redacted>"),
            )
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    /// An agent keeping its state (certificates, task database, task
    /// directories) in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        AgentBuilder {
            state_dir: state_dir.into(),
            managers: Vec::new(),
            join_token: None,
            executor: None,
            labels: BTreeMap::new(),
            hostname: None,
            data_path_addr: None,
            availability: NodeAvailability::Active,
            backoff: (Duration::from_millis(100), Duration::from_secs(8)),
            networking: None,
        }
    }

    /// A manager's address (`host:port`); call again for more. Later the
    /// list the managers send replaces it.
    pub fn manager(mut self, addr: impl Into<String>) -> Self {
        self.managers.push(addr.into());
        self
    }

    /// Several manager addresses.
    pub fn managers(mut self, addrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.managers.extend(addrs.into_iter().map(Into::into));
        self
    }

    /// The join token, needed only until the node has a certificate.
    pub fn join_token(mut self, token: impl Into<String>) -> Self {
        self.join_token = Some(token.into());
        self
    }

    /// The executor (default: a [`ProcessExecutor`] under
    /// `<state dir>/tasks`).
    pub fn executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// An engine label (`engine.labels.<key>` in placement constraints).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The hostname reported instead of the host's.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// The address other nodes reach this node's overlay data plane at.
    pub fn data_path_addr(mut self, addr: impl Into<String>) -> Self {
        self.data_path_addr = Some(addr.into());
        self
    }

    /// Availability the node joins with (default active).
    pub fn availability(mut self, availability: NodeAvailability) -> Self {
        self.availability = availability;
        self
    }

    /// Attach tasks to their overlay networks (off by default: tasks share
    /// the node's network and network views are ignored). The agent feeds
    /// the manager's network views to `attacher`, and the default process
    /// executor attaches tasks through it; a custom executor must be given
    /// the same attacher (e.g. [`ProcessExecutor::networking`]).
    /// [`NetworkAttacher::for_node`] picks the VXLAN driver when running as
    /// root with a data-path address.
    pub fn networking(mut self, attacher: Arc<NetworkAttacher>) -> Self {
        self.networking = Some(attacher);
        self
    }

    /// Reconnection delays (default 100 ms doubling to 8 s, jittered).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<Agent, AgentError> {
        if self.state_dir.as_os_str().is_empty() {
            return Err(AgentError::Config("the state directory is empty".into()));
        }
        let managers: Vec<String> = self
            .managers
            .iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        let remembered = load_remembered(&self.state_dir.join(MANAGERS_FILE));
        if managers.is_empty() && remembered.is_empty() {
            return Err(AgentError::Config(
                "no manager address given, and none remembered in the state directory".into(),
            ));
        }
        let token = self
            .join_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(JoinToken::parse)
            .transpose()?;
        let executor = self.executor.clone().unwrap_or_else(|| {
            let mut e = ProcessExecutor::new(self.state_dir.join(TASKS_DIR));
            if let Some(n) = &self.networking {
                e = e.networking(n.clone());
            }
            Arc::new(e)
        });
        Ok(Agent {
            config: self,
            managers,
            token,
            executor,
        })
    }
}

/// A worker node's agent. See the [crate docs](crate) for an example.
pub struct Agent {
    config: AgentBuilder,
    managers: Vec<String>,
    token: Option<JoinToken>,
    executor: Arc<dyn Executor>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .finish()
    }
}

/// A running agent.
#[derive(Debug)]
pub struct AgentHandle {
    node_id: String,
    worker: Arc<Worker>,
    stop: watch::Sender<bool>,
    connected: watch::Receiver<bool>,
    role: watch::Receiver<NodeRole>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Starts configuring an agent.
    pub fn builder(state_dir: impl Into<PathBuf>) -> AgentBuilder {
        AgentBuilder::new(state_dir)
    }

    /// Runs until `shutdown` resolves, then stops. Errors only when the
    /// agent cannot start (see [`Agent::start`]).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        let handle = self.start().await?;
        shutdown.await;
        handle.shutdown().await;
        Ok(())
    }

    /// Gets the node's credentials (joining with the token on first
    /// start, else loading the stored certificate), opens the task
    /// database and starts the session loop and certificate renewal in
    /// the background. A refused join (wrong token, wrong cluster) is an
    /// error here; a manager that cannot be reached later is retried.
    pub async fn start(self) -> Result<AgentHandle, AgentError> {
        let store = CredentialStore::new(self.config.state_dir.join(CERTIFICATES_DIR));
        let enrollment = self.credentials(&store).await?;
        let node_id = enrollment.credentials.identity().node_id.clone();
        let tls = NodeTls::new(enrollment)?;
        tracing::info!(node = %node_id, "agent starting");

        let (worker, reports) = Worker::open(
            &self.config.state_dir.join(TASK_DB_FILE),
            self.executor.clone(),
        )?;
        worker.set_node_id(&node_id);
        if let Some(n) = &self.config.networking {
            worker.set_networking(n.clone());
        }
        let worker = Arc::new(worker);

        let mut description = self.executor.describe().await?;
        self.customize(&mut description);

        // The configured managers first, then the ones remembered from the
        // last run (the one joined through may be gone).
        let managers_file = self.config.state_dir.join(MANAGERS_FILE);
        let remembered = load_remembered(&managers_file);
        let seeds = self.managers.iter().cloned().chain(remembered);
        let managers = Managers::new(seeds);
        if let Err(e) = crate::managers::remember(&managers_file, &managers.addrs()) {
            tracing::warn!(file = %managers_file.display(), error = %e, "cannot remember the managers");
        }
        let managers = Arc::new(Mutex::new(managers));
        let (stop, stop_rx) = watch::channel(false);
        let (connected_tx, connected) = watch::channel(false);
        let (channel_tx, channel_rx) = watch::channel(None);
        let renew_now = Arc::new(tokio::sync::Notify::new());
        let (role_tx, role) = watch::channel(tls.credentials.current().identity().role);
        let backoff = Backoff::new(self.config.backoff.0, self.config.backoff.1);
        let publisher = tokio::spawn(crate::log_publisher::run(LogPublisher {
            worker: worker.clone(),
            node_id: node_id.clone(),
            session: channel_rx,
            stop: stop_rx.clone(),
            backoff: backoff.clone(),
        }));
        let sessions = tokio::spawn(session_loop(SessionLoop {
            tls: tls.clone(),
            description,
            worker: worker.clone(),
            reports,
            managers: managers.clone(),
            managers_file,
            stop: stop_rx.clone(),
            connected: connected_tx,
            channel: channel_tx,
            backoff,
            renew_now: renew_now.clone(),
        }));
        let renewals = tokio::spawn(renewal_loop(Renewals {
            tls,
            store,
            managers,
            stop: stop_rx,
            now: renew_now,
            role: role_tx,
        }));
        Ok(AgentHandle {
            node_id,
            worker,
            stop,
            connected,
            role,
            tasks: vec![sessions, publisher, renewals],
        })
    }

    async fn credentials(&self, store: &CredentialStore) -> Result<Enrollment, AgentError> {
        let loader = store.clone();
        let stored = tokio::task::spawn_blocking(move || loader.load())
            .await
            .map_err(|e| AgentError::Config(format!("loading credentials: {e}")))??;
        if let Some(stored) = stored {
            return Ok(Enrollment {
                credentials: stored.credentials,
                roots: stored.roots,
            });
        }
        let token = self
            .token
            .as_ref()
            .ok_or_else(|| AgentError::NotJoined(store.dir().to_path_buf()))?;
        let options = JoinOptions {
            availability: self.config.availability,
            store: Some(store.clone()),
            ..JoinOptions::default()
        };
        let mut last = None;
        for addr in &self.managers {
            match swarm_pki::join(addr, token, &options).await {
                Ok(e) => {
                    tracing::info!(manager = %addr, "joined: {e}");
                    return Ok(e);
                }
                // Unreachable: try the next manager. Anything else (a
                // wrong token or cluster) is the answer.
                Err(e @ JoinError::Connect { .. }) => {
                    tracing::warn!(manager = %addr, error = %e, "cannot reach manager to join");
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(
            || AgentError::Config("no manager address given".into()),
            AgentError::from,
        ))
    }

    fn customize(&self, d: &mut NodeDescription) {
        if let Some(h) = &self.config.hostname {
            d.hostname = h.clone();
        }
        if let Some(a) = &self.config.data_path_addr {
            d.data_path_addr = a.clone();
        }
        d.executor = self.executor.name().to_string();
        let engine = d.engine.get_or_insert_with(Default::default);
        for (k, v) in &self.config.labels {
            engine.labels.insert(k.clone(), v.clone());
        }
        // The scheduler places tasks on overlay networks only on nodes
        // that report the network driver.
        if let Some(n) = &self.config.networking {
            let plugin = swarm_api::v1::PluginDescription {
                r#type: "Network".into(),
                name: n.driver_name().into(),
            };
            if !engine.plugins.contains(&plugin) {
                engine.plugins.push(plugin);
            }
        }
    }
}

impl AgentHandle {
    /// The node's id (from its certificate).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The task manager, to look at the tasks the node holds.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// True while a session with a manager is open.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until a session is open.
    pub async fn connected(&self) {
        let mut rx = self.connected.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// The role of the node's current certificate, updated when a renewal
    /// brings a new one: a promotion shows here as [`NodeRole::Manager`]
    /// once the certificate says so (an embedding daemon then starts its
    /// manager), a demotion as [`NodeRole::Worker`].
    pub fn role(&self) -> watch::Receiver<NodeRole> {
        self.role.clone()
    }

    /// Stops the session, renewal and task runners. Tasks stay recorded
    /// in the state directory; the processes of the process executor stop
    /// with the agent.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.worker.shutdown().await;
    }
}

struct SessionLoop {
    tls: NodeTls,
    description: NodeDescription,
    worker: Arc<Worker>,
    reports: StatusReceiver,
    managers: Arc<Mutex<Managers>>,
    managers_file: PathBuf,
    stop: watch::Receiver<bool>,
    connected: watch::Sender<bool>,
    channel: watch::Sender<Option<tonic::transport::Channel>>,
    backoff: Backoff,
    renew_now: Arc<tokio::sync::Notify>,
}

async fn session_loop(mut s: SessionLoop) {
    let mut pending: Vec<TaskStatusUpdate> = Vec::new();
    let mut last_failed: Option<String> = None;
    while !*s.stop.borrow() {
        let Some(addr) = s
            .managers
            .lock()
            .pick(last_failed.as_deref(), &mut rand::rng())
        else {
            tracing::error!("no manager to connect to");
            return;
        };
        let began = tokio::time::Instant::now();
        let result = run_session(
            &addr,
            SessionContext {
                tls: &s.tls,
                description: s.description.clone(),
                worker: &s.worker,
                reports: &mut s.reports,
                pending: &mut pending,
                managers: &s.managers,
                managers_file: &s.managers_file,
                stop: &mut s.stop,
                connected: &s.connected,
                channel: &s.channel,
                renew_now: &s.renew_now,
            },
        )
        .await;
        let err = match result {
            Ok(()) => return,
            Err(e) => e,
        };
        if let crate::error::SessionError::Rpc(status) = &err
            && note_redirect(status, &s.managers)
        {
            last_failed = None;
            continue;
        }
        tracing::warn!(manager = %addr, error = %err, "session ended");
        last_failed = Some(addr);
        // A session that lasted counts as a success: start backing off anew.
        if began.elapsed() > Duration::from_secs(10) {
            s.backoff.reset();
        }
        let delay = s.backoff.next(&mut rand::rng());
        tokio::select! {
            _ = s.stop.changed() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// What the renewal loop works with.
struct Renewals {
    tls: NodeTls,
    store: CredentialStore,
    managers: Arc<Mutex<Managers>>,
    stop: watch::Receiver<bool>,
    /// Renew at once (the node's role changed).
    now: Arc<tokio::sync::Notify>,
    /// The role of the current certificate.
    role: watch::Sender<NodeRole>,
}

/// Shortest time between two renewals asked for by a role change, so a
/// manager whose view lags cannot make the agent renew in a loop.
const MIN_ROLE_RENEWAL_GAP: Duration = Duration::from_secs(1);

/// Renews the node certificate at a random point between 50% and 80% of
/// its life, or at once when the node's role changed, retrying with
/// backoff; publishes the role of each new certificate.
async fn renewal_loop(r: Renewals) {
    let Renewals {
        tls,
        store,
        managers,
        mut stop,
        now,
        role,
    } = r;
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut last_forced: Option<tokio::time::Instant> = None;
    loop {
        let identity = tls.credentials.current().identity().clone();
        let plan = plan_renewal(&identity, SystemTime::now(), &mut rand::rng());
        let wait = match plan {
            Renewal::Wait(d) => d,
            Renewal::Now => Duration::ZERO,
            Renewal::Expired => {
                tracing::error!(
                    node = %identity.node_id,
                    "the node certificate has expired: the node must join again with a token"
                );
                return;
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => {}
            () = now.notified() => {
                if let Some(at) = last_forced {
                    let due = at + MIN_ROLE_RENEWAL_GAP;
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
                last_forced = Some(tokio::time::Instant::now());
            }
        }
        let options = JoinOptions {
            store: Some(store.clone()),
            ..JoinOptions::default()
        };
        let addr = managers.lock().pick(None, &mut rand::rng());
        let result = match &addr {
            Some(addr) => swarm_pki::renew(addr, &tls, &options).await,
            None => return,
        };
        match result.and_then(|e| tls.apply(e)) {
            Ok(()) => {
                backoff.reset();
                let renewed = tls.credentials.current().identity().role;
                tracing::info!(node = %identity.node_id, role = ?renewed, "node certificate renewed");
                role.send_if_modified(|r| std::mem::replace(r, renewed) != renewed);
            }
            Err(e) => {
                let delay = backoff.next(&mut rand::rng());
                tracing::warn!(error = %e, retry_in = ?delay, "certificate renewal failed");
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
