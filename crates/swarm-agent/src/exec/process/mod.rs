//! The process executor: runs a task's `command` + `args` as a child
//! process of the agent. Needs nothing installed; the default executor.
//!
//! For each task, under the executor's root directory:
//!
//! ```text
//! <root>/<task id>/work          working directory (unless the spec sets `dir`)
//! <root>/<task id>/run/secrets   the task's secrets, on a tmpfs (root only)
//! <root>/<task id>/configs       the task's configs
//! <root>/<task id>/pid           pid and start time of the running process
//! ```
//!
//! The process gets a clean environment: `PATH` (a standard one), `HOME`
//! (of the user, when known), `HOSTNAME` (when the spec sets one),
//! `SWARM_TASK_ID`, `SWARM_TASK_DIR`, `SWARM_SECRETS_DIR`,
//! `SWARM_CONFIGS_DIR`, then the spec's `env` (which may override any of
//! them). It runs in its own process group, so stopping it reaches its
//! children too; stdout and stderr are kept in a bounded [`LogBuffer`].
//! It runs as the spec's `user` when set (`name`, `uid`, `uid:gid`).
//!
//! A `healthcheck` (`CMD` or `CMD-SHELL`) runs like the task's process,
//! every `interval`; `retries` consecutive failures after the
//! `start_period` make the task unhealthy: it is killed and
//! [`Controller::wait`] returns [`ExecError::Unhealthy`] (the task manager
//! reports FAILED, message `unhealthy`).
//!
//! Not supported (the task is rejected with a clear error): images,
//! mounts, supplementary groups, capabilities, a TTY, a read-only root.
//! The process shares the node's network namespace, unless the executor
//! has a [`NetworkAttacher`] ([`ProcessExecutor::networking`]) and the task
//! has network attachments: then `prepare` gives the task a namespace of
//! its own joined to its networks, the process (and its health checks) run
//! in it with a private mount namespace whose `/etc/resolv.conf` names the
//! embedded DNS at 127.0.0.11 (through util-linux's `nsenter`, `unshare`
//! and `setpriv`, see `in_netns`), and `remove` takes it down.

mod controller;
pub(crate) mod health;
mod in_netns;
pub mod pid_record;
mod user;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use swarm_api::v1::{EngineDescription, NodeDescription, Platform, Resources, Task};

pub use crate::exec::logs::{LogBuffer, MAX_LINE_BYTES};
pub use controller::ProcessController;
pub use health::{DEFAULT_INTERVAL, DEFAULT_RETRIES, DEFAULT_TIMEOUT};
pub use pid_record::{PidRecord, live_task_processes};

use super::{Controller, Dependencies, ExecError, Executor};
use crate::network::NetworkAttacher;

/// Name of the process executor in node descriptions.
pub const EXECUTOR_NAME: &str = "process";

/// Default size of each task's log buffer (bytes of text).
pub const DEFAULT_LOG_BYTES: usize = 256 * 1024;

/// Runs tasks as child processes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    root: PathBuf,
    log_bytes: usize,
    network: Option<Arc<NetworkAttacher>>,
}

impl ProcessExecutor {
    /// An executor keeping task directories under `root` (created as
    /// needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcessExecutor {
            root: root.into(),
            log_bytes: DEFAULT_LOG_BYTES,
            network: None,
        }
    }

    /// Bytes of output kept per task (default [`DEFAULT_LOG_BYTES`]).
    pub fn log_bytes(mut self, bytes: usize) -> Self {
        self.log_bytes = bytes;
        self
    }

    /// Attach tasks with network attachments through `attacher` (off by
    /// default: tasks share the node's network). Give the agent the same
    /// attacher ([`crate::AgentBuilder::networking`]) so it receives the
    /// manager's network views.
    pub fn networking(mut self, attacher: Arc<NetworkAttacher>) -> Self {
        self.network = Some(attacher);
        self
    }

    /// The directory tasks live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the task with `task_id`.
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.root.join(task_id)
    }
}

#[async_trait]
impl Executor for ProcessExecutor {
    fn name(&self) -> &str {
        EXECUTOR_NAME
    }

    async fn describe(&self) -> Result<NodeDescription, ExecError> {
        Ok(NodeDescription {
            hostname: crate::node::hostname(),
            platform: Some(Platform {
                architecture: std::env::consts::ARCH.to_string(),
                os: std::env::consts::OS.to_string(),
            }),
            resources: Some(Resources {
                nano_cpus: crate::node::nano_cpus(),
                memory_bytes: crate::node::memory_bytes(),
                generic: Vec::new(),
            }),
            engine: Some(EngineDescription {
                engine_version: format!("swarm-agent {}", env!("CARGO_PKG_VERSION")),
                ..Default::default()
            }),
            executor: EXECUTOR_NAME.to_string(),
            data_path_addr: String::new(),
        })
    }

    fn controller(
        &self,
        task: &Task,
        deps: &Dependencies,
    ) -> Result<Box<dyn Controller>, ExecError> {
        super::checks::task_id(&task.id)?;
        let mut c = ProcessController::new(task, deps, self.task_dir(&task.id), self.log_bytes);
        if let Some(n) = &self.network
            && !task.networks.is_empty()
        {
            c = c.with_network(n.clone(), task.clone());
        }
        Ok(Box::new(c))
    }
}
