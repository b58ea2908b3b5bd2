//! The node's worker: a `swarm-agent` agent started beside (or instead of)
//! the manager.
//!
//! A worker-only node joined with a worker token and keeps its certificate
//! under `<state dir>/certificates`. A manager node runs its agent from the
//! same state directory: the agent loads the manager's certificate (the
//! dispatcher serves manager and worker roles alike), so the node is one
//! node in the cluster, not two.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use swarm_agent::agent::CERTIFICATES_DIR;
use swarm_agent::exec::oci::OciExecutor;
use swarm_agent::{
    Agent, AgentError, AgentHandle, DockerExecutor, ExecError, Executor, ProcessExecutor,
};
use swarm_api::v1::NodeAvailability;

use super::cli::ExecutorKind;

/// What a worker needs to know.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The node's state directory (the agent keeps its task DB there).
    pub state_dir: PathBuf,
    /// Managers to connect to.
    pub managers: Vec<String>,
    /// A join token, for a node that has no certificate yet.
    pub join_token: Option<String>,
    /// How tasks run.
    pub executor: ExecutorKind,
    /// The runc executor's image store (default `<state dir>/images`).
    pub images_dir: Option<PathBuf>,
    /// Overlay data-plane address.
    pub data_path_addr: Option<String>,
    /// Engine labels the node reports (usable in constraints as
    /// `engine.labels.KEY`).
    pub labels: BTreeMap<String, String>,
    /// The host name to report instead of the machine's.
    pub hostname: Option<String>,
    /// The availability asked for when joining.
    pub availability: NodeAvailability,
}

/// Why no worker runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The Docker executor cannot reach the local engine.
    #[error("--executor docker: {0}")]
    Docker(#[source] ExecError),
    /// The runc executor cannot be set up (no runc, directories).
    #[error("--executor runc: {0}")]
    Runc(#[source] ExecError),
    /// The overlay data plane could not be set up.
    #[error("networking: {0}")]
    Network(#[from] swarm_agent::network::NetworkError),
    /// The agent could not start (no certificate, wrong token, ...).
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    handle: AgentHandle,
}

impl Worker {
    /// The node id from the worker's certificate.
    pub fn node_id(&self) -> &str {
        self.handle.node_id()
    }

    /// The role of the node's certificate, following renewals.
    pub fn role(&self) -> tokio::sync::watch::Receiver<swarm_api::v1::NodeRole> {
        self.handle.role()
    }

    /// Stops the worker and its tasks' supervision.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// True when `state_dir` holds a node certificate (a worker's, when no
/// manager state is beside it).
pub fn has_state(state_dir: &Path) -> bool {
    state_dir
        .join(CERTIFICATES_DIR)
        .join(swarm_pki::CERT_FILE)
        .is_file()
}

/// Starts the worker: joins with the token on first start (or loads the
/// stored certificate), then keeps a dispatcher session in the background.
/// With no manager given, the agent uses the ones it remembered from its
/// last run. Run as root with a data-path address (an IP), tasks on overlay
/// networks get their own namespaces joined to them (VXLAN), with the
/// embedded DNS and the services' VIPs.
pub async fn start(config: WorkerConfig) -> Result<Worker, WorkerError> {
    let dp_ip = config
        .data_path_addr
        .as_deref()
        .and_then(|a| a.parse::<std::net::IpAddr>().ok());
    let networking = match dp_ip {
        Some(ip) => {
            let n = swarm_agent::network::NetworkAttacher::for_node(Some(ip)).await?;
            n.has_sandboxes().then(|| Arc::new(n))
        }
        None => None,
    };
    let tasks_dir = config.state_dir.join(swarm_agent::agent::TASKS_DIR);
    let executor: Arc<dyn Executor> = match config.executor {
        ExecutorKind::Process => {
            let mut e = ProcessExecutor::new(tasks_dir);
            if let Some(n) = &networking {
                e = e.networking(n.clone());
            }
            Arc::new(e)
        }
        // Tasks on overlays join them through a sandbox container; the
        // others stay on the engine's default bridge network.
        ExecutorKind::Docker => {
            let mut b = DockerExecutor::builder().root(tasks_dir);
            if let Some(n) = &networking {
                b = b.networking(n.clone());
            }
            Arc::new(b.connect().await.map_err(WorkerError::Docker)?)
        }
        // Containers on the task's overlay networks (own namespace, the
        // embedded DNS), else on the node's network.
        ExecutorKind::Runc => {
            let images = config
                .images_dir
                .clone()
                .unwrap_or_else(|| config.state_dir.join("images"));
            let mut b = OciExecutor::builder(tasks_dir).images(images);
            if let Some(n) = &networking {
                b = b.networking(n.clone());
            }
            Arc::new(b.build().map_err(WorkerError::Runc)?)
        }
    };
    let mut b = Agent::builder(&config.state_dir)
        .managers(config.managers.iter().cloned())
        .executor(executor)
        .availability(config.availability);
    if let Some(t) = &config.join_token {
        b = b.join_token(t.clone());
    }
    if let Some(a) = &config.data_path_addr {
        b = b.data_path_addr(a.clone());
    }
    if let Some(n) = networking {
        tracing::info!("overlay networking on (VXLAN, task namespaces)");
        b = b.networking(n);
    }
    if let Some(h) = &config.hostname {
        b = b.hostname(h.clone());
    }
    for (k, v) in &config.labels {
        b = b.label(k.clone(), v.clone());
    }
    let handle = b.build()?.start().await?;
    tracing::info!(node_id = handle.node_id(), "worker started");
    Ok(Worker { handle })
}
