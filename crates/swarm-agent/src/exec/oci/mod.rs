//! The OCI executor: runs each task as a container through `runc`, from
//! an OCI bundle the agent writes. Needs root and the `runc` binary
//! (Debian package `runc`; tested with 1.1.5 on cgroup v1).
//!
//! # What a task becomes
//!
//! - **Image**: a root filesystem from the executor's [`ImageStore`] (a
//!   directory per image, or a tarball unpacked once); an image the store
//!   lacks rejects the task at prepare ([`ExecError::ImageNotFound`]).
//!   [`busybox_rootfs`] makes a small one from a static busybox.
//! - **Bundle**: `<root>/<task id>/` holds `config.json` and the root
//!   filesystem, an overlay mount of the image (read-only lower layer)
//!   and a writable layer of the task's own, unmounted at remove.
//! - **Process**: `command` + `args` (images carry no entrypoint, so a
//!   command is required), `env` (after `PATH`, `HOSTNAME`, `HOME`),
//!   `dir` (default `/`), `user` and `groups` resolved against the
//!   image's `/etc/passwd` and `/etc/group`, `hostname` (default: the
//!   first 12 characters of the task id), no new privileges, Docker's
//!   default capabilities plus `capability_add` minus `capability_drop`,
//!   `read_only` for a read-only root. With `init`, a static tini (the
//!   node's `docker-init`, [`OciExecutorBuilder::init_binary`]) is
//!   bind-mounted at [`INIT_PATH`] and runs as PID 1 with the program as
//!   its child, forwarding signals and reaping orphans (Docker's
//!   `--init`). A `tty` is not supported (runc would need a console
//!   socket and the agent a terminal reader): such tasks are refused.
//! - **Mounts**: `/proc`, a `/dev` tmpfs, devpts, `/dev/shm`, mqueue, a
//!   read-only sysfs, the spec's bind and tmpfs mounts (volumes are not
//!   supported), and read-only file binds: `/etc/resolv.conf`,
//!   `/etc/hosts`, `/etc/hostname`, the secrets at `/run/secrets/<name>`
//!   (written to a tmpfs, never to disk) and the configs at their
//!   targets.
//! - **Resources**: the task's limits become cgroup limits (`NanoCPUs` →
//!   CFS quota over a 100 ms period, `MemoryBytes` → memory limit), plus
//!   the executor's pids limit if set
//!   ([`OciExecutorBuilder::pids_limit`]); the cgroup is
//!   `/<cgroup parent>/swarm-<task id>` in every hierarchy.
//! - **Logs**: `runc run` runs in the foreground as the agent's child, so
//!   the container's stdout and stderr are its pipes, read into a bounded
//!   [`LogBuffer`](crate::LogBuffer); its exit is the container's (a death by signal `n`
//!   is reported by runc as `128 + n` and becomes
//!   [`ExitStatus::signaled`](crate::ExitStatus::signaled)).
//! - **Stopping**: `runc kill <id> <signal>`, then `runc kill <id> KILL`
//!   once the grace period has passed; `remove` runs `runc delete
//!   --force`, unmounts and deletes the bundle.
//! - **Health check**: run with `runc exec` in the container, as the
//!   process executor runs its checks.
//! - **Agent restart**: the container outlives the agent (runc's state is
//!   under `<root>/.runc`, apart from any other runc user's such as
//!   Docker). [`Controller::recover`] finds a
//!   running one with `runc state` and follows it by polling; it is no
//!   child of the new agent, so its exit code is unknown (-1) and its
//!   later output is lost. Anything else of the task is deleted.
//!
//! # Network
//!
//! With a [`NetworkAttacher`] ([`OciExecutorBuilder::networking`]) and a
//! task on overlay networks, `prepare` attaches the task (a namespace of
//! its own joined to its networks, the embedded DNS at 127.0.0.11) and
//! the container joins that namespace (`linux.namespaces` with a
//! `path`); its `/etc/resolv.conf` names `127.0.0.11` only. A task
//! without networks shares the node's network namespace (and gets a copy
//! of the node's `/etc/resolv.conf`): like the process executor, and like
//! Docker's `host` mode; a private namespace with no interface but
//! loopback would leave it unreachable.
//!
//! [`Controller::recover`]: crate::Controller::recover

mod bundle;
pub mod config;
mod controller;
mod image;
mod runc;
mod spec;
mod user;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use swarm_api::v1::{EngineDescription, NodeDescription, Platform, Resources, Task};

pub use bundle::SECRETS_TARGET;
pub use controller::OciController;
pub use image::{ImageStore, ROOTFS_DIR, busybox_rootfs};
pub use spec::{DEFAULT_CAPABILITIES, INIT_PATH};

use super::{Controller, Dependencies, ExecError, Executor};
use crate::network::NetworkAttacher;

/// Name of the OCI executor in node descriptions.
pub const EXECUTOR_NAME: &str = "runc";

/// The runc binary when none is given (Debian's).
pub const DEFAULT_RUNC: &str = "/usr/sbin/runc";

/// The parent cgroup of task containers when none is given.
pub const DEFAULT_CGROUP_PARENT: &str = "swarm-runc";

/// Prefix of container ids (`swarm-<task id>`).
pub const CONTAINER_PREFIX: &str = "swarm-";

/// Directory of runc's state under the executor's root.
pub const RUNC_STATE_DIR: &str = ".runc";

/// The runc container id of a task.
pub fn container_id(task_id: &str) -> String {
    format!("{CONTAINER_PREFIX}{task_id}")
}

/// What every controller of an executor shares.
#[derive(Debug)]
struct Shared {
    root: PathBuf,
    images: ImageStore,
    runc: runc::Runc,
    log_bytes: usize,
    network: Option<Arc<NetworkAttacher>>,
    pids_limit: Option<i64>,
    cgroup_parent: String,
    init: Option<PathBuf>,
}

/// Settings of an [`OciExecutor`]; [`OciExecutorBuilder::build`] checks
/// them.
#[derive(Debug, Clone)]
pub struct OciExecutorBuilder {
    root: PathBuf,
    images: Option<PathBuf>,
    runc: PathBuf,
    log_bytes: usize,
    network: Option<Arc<NetworkAttacher>>,
    pids_limit: Option<i64>,
    cgroup_parent: String,
    init: Option<PathBuf>,
}

/// Where the init binary is looked for when none is given: Docker's
/// `docker-init`, then tini (Debian's `tini` package). It must be static:
/// it runs inside the container's root filesystem.
pub const INIT_CANDIDATES: [&str; 4] = [
    "/usr/bin/docker-init",
    "/usr/libexec/docker/docker-init",
    "/usr/bin/tini-static",
    "/usr/sbin/tini-static",
];

impl OciExecutorBuilder {
    /// The init binary run as PID 1 of tasks whose spec sets `init` (a
    /// static tini; default: the first of [`INIT_CANDIDATES`] present).
    /// Without one, such tasks are refused at prepare.
    pub fn init_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.init = Some(path.into());
        self
    }

    /// The image store's directory (default `<root>/.images`; an agent
    /// gives `<state dir>/images`).
    pub fn images(mut self, dir: impl Into<PathBuf>) -> Self {
        self.images = Some(dir.into());
        self
    }

    /// The runc binary (default [`DEFAULT_RUNC`]).
    pub fn runc(mut self, path: impl Into<PathBuf>) -> Self {
        self.runc = path.into();
        self
    }

    /// Bytes of output kept per task.
    pub fn log_bytes(mut self, bytes: usize) -> Self {
        self.log_bytes = bytes;
        self
    }

    /// Attach tasks with network attachments through `attacher` (off by
    /// default: containers share the node's network). Give the agent the
    /// same attacher.
    pub fn networking(mut self, attacher: Arc<NetworkAttacher>) -> Self {
        self.network = Some(attacher);
        self
    }

    /// Most processes a task's container may have at once (default: no
    /// limit; the task spec has no field for it).
    pub fn pids_limit(mut self, limit: i64) -> Self {
        self.pids_limit = Some(limit);
        self
    }

    /// The cgroup containers go under (default
    /// [`DEFAULT_CGROUP_PARENT`]).
    pub fn cgroup_parent(mut self, name: impl Into<String>) -> Self {
        self.cgroup_parent = name.into();
        self
    }

    /// Checks the settings and makes the directories.
    pub fn build(self) -> Result<OciExecutor, ExecError> {
        if !self.runc.is_file() {
            return Err(ExecError::Runtime {
                what: "find the binary".into(),
                reason: format!(
                    "{} is not a file (install Debian's runc)",
                    self.runc.display()
                ),
            });
        }
        let parent_ok = !self.cgroup_parent.is_empty()
            && self
                .cgroup_parent
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != "..");
        if !parent_ok {
            return Err(ExecError::InvalidSpec(format!(
                "cgroup parent {:?} must be a relative path",
                self.cgroup_parent
            )));
        }
        let images = self.images.unwrap_or_else(|| self.root.join(".images"));
        let state = self.root.join(RUNC_STATE_DIR);
        for d in [&self.root, &images, &state] {
            std::fs::create_dir_all(d).map_err(ExecError::io(d))?;
        }
        Ok(OciExecutor {
            shared: Arc::new(Shared {
                images: ImageStore::new(images),
                runc: runc::Runc::new(self.runc, state),
                root: self.root,
                log_bytes: self.log_bytes,
                network: self.network,
                pids_limit: self.pids_limit.filter(|p| *p > 0),
                cgroup_parent: self.cgroup_parent,
                init: self.init.or_else(|| {
                    INIT_CANDIDATES
                        .iter()
                        .map(PathBuf::from)
                        .find(|p| p.is_file())
                }),
            }),
        })
    }
}

/// Runs tasks as runc containers. Cheap to clone. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct OciExecutor {
    shared: Arc<Shared>,
}

impl OciExecutor {
    /// Settings for an executor keeping its bundles under `root`.
    pub fn builder(root: impl Into<PathBuf>) -> OciExecutorBuilder {
        OciExecutorBuilder {
            root: root.into(),
            images: None,
            runc: PathBuf::from(DEFAULT_RUNC),
            log_bytes: super::process::DEFAULT_LOG_BYTES,
            network: None,
            pids_limit: None,
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_string(),
            init: None,
        }
    }

    /// The directory bundles live under.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The bundle directory of the task with `task_id`.
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.shared.root.join(task_id)
    }

    /// runc's state directory (`runc --root`).
    pub fn runc_root(&self) -> PathBuf {
        self.shared.root.join(RUNC_STATE_DIR)
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.shared.images
    }

    /// The cgroup path of a task's container (relative to each
    /// hierarchy's root).
    pub fn cgroup_path(&self, task_id: &str) -> String {
        format!("{}/{}", self.shared.cgroup_parent, container_id(task_id))
    }
}

#[async_trait]
impl Executor for OciExecutor {
    fn name(&self) -> &str {
        EXECUTOR_NAME
    }

    async fn describe(&self) -> Result<NodeDescription, ExecError> {
        let version = self.shared.runc.version().await?;
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
                engine_version: version,
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
        Ok(Box::new(OciController::new(
            self.shared.clone(),
            task,
            deps,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_checks_its_settings() {
        let root = std::env::temp_dir().join(format!("swarm-oci-builder-{}", std::process::id()));
        let missing = OciExecutor::builder(&root).runc("/no/such/runc").build();
        assert!(matches!(missing, Err(ExecError::Runtime { .. })));
        // /bin/sh stands in for a runc binary: only its presence is checked.
        let bad_parent = OciExecutor::builder(&root)
            .runc("/bin/sh")
            .cgroup_parent("../x")
            .build();
        assert!(matches!(bad_parent, Err(ExecError::InvalidSpec(_))));
        let e = OciExecutor::builder(&root).runc("/bin/sh").build().unwrap();
        assert_eq!(e.images().dir(), root.join(".images"));
        assert_eq!(e.runc_root(), root.join(".runc"));
        assert_eq!(e.cgroup_path("t1"), "swarm-runc/swarm-t1");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
