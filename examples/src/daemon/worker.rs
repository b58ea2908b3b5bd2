//! The node's worker: where `swarm-agent` plugs in.
//!
//! `swarm-agent` (an `Agent` builder and the process/runc/docker
//! executors) is not in the workspace yet. Until it is, [`start`] reports
//! that workers are unavailable and `swarmd` runs managers only. Wiring
//! the agent is local to this file: build an agent from [`WorkerConfig`]
//! in [`start`] and stop it in [`Worker::shutdown`].

use std::path::PathBuf;

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
    /// Overlay data-plane address.
    pub data_path_addr: Option<String>,
}

/// Why no worker runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// This build has no worker.
    #[error("this swarmd has no worker yet (swarm-agent is not wired in): {0}")]
    Unavailable(String),
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    _private: (),
}

impl Worker {
    /// Stops the worker and its tasks' supervision.
    pub async fn shutdown(self) {}
}

/// True when `state_dir` holds a worker's state (and no manager's).
pub fn has_state(_state_dir: &std::path::Path) -> bool {
    false
}

/// Starts the worker.
pub async fn start(config: WorkerConfig) -> Result<Worker, WorkerError> {
    Err(WorkerError::Unavailable(format!(
        "cannot run tasks with the {} executor on this node",
        config.executor.name()
    )))
}
