//! The Docker executor: runs each task as a container of the local Docker
//! engine, through the Engine API over its Unix socket (bollard).
//!
//! Built with the `docker` cargo feature (on by default).
//!
//! # What a task becomes
//!
//! - **Image**: used as it is when the engine has it; pulled only when it
//!   is missing (a pull of an image that is already local would wait on
//!   the registry, or on DNS timeouts where there is none). A failed pull
//!   rejects the task with [`ExecError::ImagePull`]. No registry
//!   credentials are sent.
//! - **Container**: named `<service name>.<slot>.<task id>` (`<service
//!   name>.<node id>.<task id>` for a global service's task, `task.<task
//!   id>` without a service), labelled with the spec's labels and the
//!   swarm labels in [`labels`]. The spec's `command` is the entrypoint
//!   and `args` its arguments (each falls back to the image's when
//!   empty), plus `env`, `dir`, `user`, `groups`, `hostname`, `tty`,
//!   `read_only`, `init`, capabilities, the stop signal, CPU and memory
//!   limits (`NanoCpus`, `Memory`), bind, volume and tmpfs mounts.
//! - **Secrets**: written by the agent to a tmpfs of its own under
//!   `<root>/<task id>/run/secrets` (never to disk) and bind-mounted
//!   read-only, one file each, at `/run/secrets/<name>`. **Configs**:
//!   written under `<root>/<task id>/configs` and bind-mounted read-only
//!   at their target (`/<name>` for a relative one). The engine must see
//!   the agent's filesystem (the agent runs on the host, not in a
//!   container of its own with another mount namespace).
//! - **Health check**: given to the engine as the container's healthcheck
//!   (defaults filled in as the process executor does). While
//!   [`Controller::wait`] runs, the container's health is polled; once the
//!   engine reports it unhealthy the container is killed and `wait`
//!   returns [`ExecError::Unhealthy`], as the process executor does.
//! - **Logs**: the container's stdout and stderr (from the engine's log
//!   driver, which must support reading: `json-file`, `local`, `journald`)
//!   are followed into a bounded [`LogBuffer`].
//! - **Stopping**: the stop signal is sent by the agent, then `SIGKILL`
//!   once the grace period has passed (with sub-second precision; the
//!   engine's own stop timeout is in whole seconds).
//! - **Exit status**: the engine reports a death by signal `n` as exit
//!   code `128 + n` (as a shell does); such codes (129 to 192) are
//!   reported as [`ExitStatus::signaled`].
//! - **Agent restart**: containers outlive the agent. [`Controller::recover`]
//!   finds the task's container by its task-id label: still running, it is
//!   followed again ([`Recovered::Running`]); otherwise it is
//!   [`Recovered::Gone`] and is removed with the task.
//!
//! # Network
//!
//! A task without network attachments (or any task when the executor has
//! no [`NetworkAttacher`]) gets the executor's
//! [network mode](DockerExecutorBuilder::network_mode): by default the
//! engine's `bridge` network, so it reaches the outside through the
//! host's NAT as a `docker run` container does, and nothing publishes its
//! ports; `none` gives no network but loopback, `host` the host's.
//!
//! A task with network attachments, when the executor has an attacher
//! that makes sandboxes ([`DockerExecutorBuilder::networking`]), joins its
//! swarm overlay networks as Kubernetes pods do, through a pause
//! container. `prepare` starts the task's **sandbox** container: the
//! task's image with `NetworkMode: none`, named `<container name>.sandbox`
//! and labelled with the task's id and [`labels::ROLE`] `sandbox`,
//! running the host's static busybox
//! ([`DockerExecutorBuilder::sandbox_binary`], mounted read-only at
//! [`PAUSE_PATH`]) as `sleep`, so that it runs in any image. The attacher
//! then names the sandbox's namespace (`/proc/<pid>/ns/net`) as the
//! task's and joins it to the task's networks (`eth0`, `eth1`...), with
//! the embedded DNS at 127.0.0.11 and the services' VIPs
//! ([`NetworkAttacher::attach_into`]). The task's container runs with
//! `NetworkMode: container:<sandbox id>` (sharing its hostname too: the
//! spec's `hostname` is given to the sandbox) and a read-only
//! `/etc/resolv.conf` of the agent's naming 127.0.0.11 only
//! ([`RESOLV_CONF`]), so programs resolve service names as in Docker's
//! swarm mode. `remove` removes the task's container, detaches the
//! networks (endpoints, DNS, VIPs, the namespace's name) and removes the
//! sandbox. After an agent restart, `recover` attaches a running task's
//! namespace again (the DNS and balancer lived in the previous agent);
//! for a task that is gone, `remove` removes whatever sandbox, namespace
//! name and files are left.
//!
//! With the no-op attacher (no sandboxes) the task keeps the executor's
//! network mode; the attacher only keeps its books.
//!
//! [`Controller::wait`]: crate::Controller::wait
//! [`Controller::recover`]: crate::Controller::recover
//! [`Recovered::Running`]: crate::Recovered::Running
//! [`Recovered::Gone`]: crate::Recovered::Gone
//! [`ExitStatus::signaled`]: crate::ExitStatus::signaled
//! [`NetworkAttacher`]: crate::network::NetworkAttacher
//! [`NetworkAttacher::attach_into`]: crate::network::NetworkAttacher::attach_into

mod controller;
mod describe;
mod engine;
mod health;
mod image;
pub mod labels;
mod logs;
mod mounts;
mod sandbox;
mod spec;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use swarm_api::v1::{NodeDescription, Task};

pub use crate::network::RESOLV_CONF;
pub use controller::DockerController;
pub use image::normalize_reference;
pub use mounts::SECRETS_TARGET;
pub use sandbox::{DEFAULT_SANDBOX_BINARY, PAUSE_PATH};
pub use spec::container_name;

use super::process::LogBuffer;
use super::{Controller, Dependencies, ExecError, Executor};
use crate::network::NetworkAttacher;

/// Name of the Docker executor in node descriptions.
pub const EXECUTOR_NAME: &str = "docker";

/// The engine's socket when none is given.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The network mode of task containers when none is given.
pub const DEFAULT_NETWORK_MODE: &str = "bridge";

/// Default time a missing image may take to pull.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Default time any other engine request may take before it fails.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of a [`DockerExecutor`]; [`DockerExecutorBuilder::connect`]
/// reaches the engine.
#[derive(Debug, Clone)]
pub struct DockerExecutorBuilder {
    socket: PathBuf,
    root: PathBuf,
    network_mode: String,
    log_bytes: usize,
    pull_timeout: Duration,
    request_timeout: Duration,
    network: Option<Arc<NetworkAttacher>>,
    sandbox_binary: PathBuf,
}

impl Default for DockerExecutorBuilder {
    fn default() -> Self {
        DockerExecutorBuilder {
            socket: PathBuf::from(DEFAULT_SOCKET),
            root: std::env::temp_dir().join("swarm-agent-docker"),
            network_mode: DEFAULT_NETWORK_MODE.to_string(),
            log_bytes: super::process::DEFAULT_LOG_BYTES,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            network: None,
            sandbox_binary: PathBuf::from(DEFAULT_SANDBOX_BINARY),
        }
    }
}

impl DockerExecutorBuilder {
    /// The engine's Unix socket (default [`DEFAULT_SOCKET`]).
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = path.into();
        self
    }

    /// Where the agent keeps each task's secrets (tmpfs) and configs, in
    /// `<root>/<task id>/` (default: `swarm-agent-docker` in the temporary
    /// directory; an agent gives its state directory's `tasks`).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// The containers' network mode (default [`DEFAULT_NETWORK_MODE`]).
    pub fn network_mode(mut self, mode: impl Into<String>) -> Self {
        self.network_mode = mode.into();
        self
    }

    /// Bytes of output kept per task.
    pub fn log_bytes(mut self, bytes: usize) -> Self {
        self.log_bytes = bytes;
        self
    }

    /// How long pulling a missing image may take (default
    /// [`DEFAULT_PULL_TIMEOUT`]).
    pub fn pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// How long any other engine request may take before its response
    /// starts (default [`DEFAULT_REQUEST_TIMEOUT`]; at least a second).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_secs(1));
        self
    }

    /// Attach tasks with network attachments through `attacher` (off by
    /// default: every container gets the [network mode](Self::network_mode)).
    /// With an attacher that makes sandboxes, such a task's container
    /// joins a sandbox container's namespace, attached to its overlay
    /// networks (see the [module docs](self)); with the no-op one, the
    /// attacher only keeps its books. Give the agent the same attacher
    /// ([`crate::AgentBuilder::networking`]) so it receives the manager's
    /// network views.
    pub fn networking(mut self, attacher: Arc<NetworkAttacher>) -> Self {
        self.network = Some(attacher);
        self
    }

    /// The static busybox on the host that network sandbox containers run
    /// (default [`DEFAULT_SANDBOX_BINARY`], from Debian busybox-static).
    /// Checked when a sandbox is made: a task needing one fails with
    /// [`ExecError::SandboxBinary`] when it is missing.
    pub fn sandbox_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.sandbox_binary = path.into();
        self
    }

    /// Connects to the engine and agrees on an API version with it.
    /// Fails with a clear error when no engine answers on the socket.
    pub async fn connect(self) -> Result<DockerExecutor, ExecError> {
        let socket = self.socket.to_string_lossy().into_owned();
        let unreachable = |reason: String| ExecError::Engine {
            what: format!("connect to the Docker engine at {socket}"),
            reason,
        };
        let docker = Docker::connect_with_unix(
            &socket,
            self.request_timeout.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| unreachable(e.to_string()))?;
        // The client speaks the newest API bollard knows; an older engine
        // refuses it, so take the highest version both know.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(DockerExecutor {
            docker,
            root: self.root,
            network_mode: self.network_mode,
            log_bytes: self.log_bytes,
            pull_timeout: self.pull_timeout,
            network: self.network.map(|attacher| sandbox::Networking {
                attacher,
                binary: self.sandbox_binary,
            }),
        })
    }
}

/// Runs tasks as Docker containers. Cheap to clone. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct DockerExecutor {
    docker: Docker,
    root: PathBuf,
    network_mode: String,
    log_bytes: usize,
    pull_timeout: Duration,
    network: Option<sandbox::Networking>,
}

impl DockerExecutor {
    /// Settings to connect with.
    pub fn builder() -> DockerExecutorBuilder {
        DockerExecutorBuilder::default()
    }

    /// Connects to the local engine with the default settings.
    pub async fn connect() -> Result<DockerExecutor, ExecError> {
        Self::builder().connect().await
    }

    /// The engine client, e.g. to inspect what a task left.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The directory task files live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the task with `task_id`.
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.root.join(task_id)
    }
}

#[async_trait]
impl Executor for DockerExecutor {
    fn name(&self) -> &str {
        EXECUTOR_NAME
    }

    async fn describe(&self) -> Result<NodeDescription, ExecError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(engine::err("read the engine's description"))?;
        Ok(describe::node_description(&info))
    }

    fn controller(
        &self,
        task: &Task,
        deps: &Dependencies,
    ) -> Result<Box<dyn Controller>, ExecError> {
        super::checks::task_id(&task.id)?;
        Ok(Box::new(DockerController::new(
            controller::Settings {
                docker: self.docker.clone(),
                dir: self.task_dir(&task.id),
                network_mode: self.network_mode.clone(),
                pull_timeout: self.pull_timeout,
                logs: LogBuffer::new(self.log_bytes),
                network: self.network.clone().filter(|_| !task.networks.is_empty()),
            },
            task,
            deps,
        )))
    }
}
