//! A local cluster of real `swarmd` processes on loopback addresses: what
//! the demo (`swarm-demo`) and the multi-process end-to-end tests drive.
//!
//! Every node is a `swarmd` child process with its own state directory
//! under the cluster's root and its own `127.0.0.x` address (all of
//! `127.0.0.0/8` reaches the loopback interface on Linux), so nodes can
//! be killed with SIGKILL, restarted from their state, and partitioned
//! from the cluster exactly as separate machines would be. Commands go
//! through the real `swarmctl` binary; checks read the control API over a
//! live manager's local socket.
//!
//! Dropping a [`LocalCluster`] stops every node (SIGTERM, then SIGKILL),
//! kills task processes that a killed node left behind, and removes the
//! root directory unless told to keep it.

mod cleanup;
mod node;
pub mod query;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use cleanup::live_task_processes;
pub use node::{LocalNode, Role};
pub use query::{Api, Placement, running_by_node};

/// Errors of the local cluster harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A binary is missing.
    #[error("{0} not found (build it with `cargo build -p swarm-examples --bins`)")]
    MissingBinary(PathBuf),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// No node of that name.
    #[error("no node named {0}")]
    UnknownNode(String),
    /// No manager answers on its control socket.
    #[error("no manager answers on its control socket")]
    NoManager,
    /// A `swarmctl` command failed.
    #[error("`swarmctl {args}` failed: {stderr}")]
    Ctl {
        /// The arguments.
        args: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A control API call failed.
    #[error("control API: {0}")]
    Api(#[from] tonic::Status),
    /// A condition was not reached in time.
    #[error("timed out after {after:?} waiting for {what}{}", last.as_ref().map(|l| format!(" (last: {l})")).unwrap_or_default())]
    Timeout {
        /// The condition.
        what: String,
        /// How long it waited.
        after: Duration,
        /// The last observation, when there is one.
        last: Option<String>,
    },
    /// A node process exited when it should run.
    #[error("swarmd {name} exited ({status}); its log:\n{log}")]
    Exited {
        /// The node.
        name: String,
        /// The exit status.
        status: String,
        /// The tail of its log.
        log: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalError {
    let what = what.into();
    move |source| LocalError::Io { what, source }
}

/// The two binaries a local cluster runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `swarmd`.
    pub swarmd: PathBuf,
    /// `swarmctl`.
    pub swarmctl: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, checked to exist.
    pub fn in_dir(dir: &Path) -> Result<Binaries, LocalError> {
        let b = Binaries {
            swarmd: dir.join("swarmd"),
            swarmctl: dir.join("swarmctl"),
        };
        for p in [&b.swarmd, &b.swarmctl] {
            if !p.is_file() {
                return Err(LocalError::MissingBinary(p.clone()));
            }
        }
        Ok(b)
    }

    /// The binaries beside the running executable (the same cargo target
    /// directory).
    pub fn beside_current_exe() -> Result<Binaries, LocalError> {
        let exe = std::env::current_exe().map_err(io("finding the current executable"))?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        // Test and bench executables live one level down, in deps/.
        Binaries::in_dir(dir).or_else(|e| match dir.parent() {
            Some(up) if dir.ends_with("deps") => Binaries::in_dir(up),
            _ => Err(e),
        })
    }
}

/// How a local cluster runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Directory holding every node's state and logs.
    pub root: PathBuf,
    /// The port every node listens on (each node has its own address).
    pub port: u16,
    /// Raft tick of every manager (SwarmKit's 1s is slow for a demo).
    pub raft_tick: String,
    /// Keep `root` when the cluster is dropped.
    pub keep: bool,
}

impl ClusterOptions {
    /// Options for a test cluster whose nodes live on `net.1`, `net.2`, ...
    /// (e.g. `net` = `127.0.12`): a port free on `net.1`, a fresh root
    /// under the temporary directory named after `tag` and this process,
    /// 100 ms raft ticks, files removed when the cluster is dropped.
    pub fn for_test(net: &str, tag: &str) -> Result<ClusterOptions, LocalError> {
        let probe = format!("{net}.1:0");
        let port = std::net::TcpListener::bind(&probe)
            .and_then(|l| l.local_addr())
            .map_err(io("finding a free port"))?
            .port();
        let root = std::env::temp_dir().join(format!("swarm-e2e-{tag}-{}", std::process::id()));
        match std::fs::remove_dir_all(&root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("clearing the cluster's directory")(e));
            }
            _ => {}
        }
        Ok(ClusterOptions {
            root,
            port,
            raft_tick: "100ms".into(),
            keep: false,
        })
    }
}

/// A cluster of `swarmd` processes. See the [module docs](self).
#[derive(Debug)]
pub struct LocalCluster {
    options: ClusterOptions,
    bins: Binaries,
    nodes: Vec<LocalNode>,
}

impl LocalCluster {
    /// An empty cluster; `init` starts its first manager.
    pub fn new(bins: Binaries, options: ClusterOptions) -> Result<LocalCluster, LocalError> {
        std::fs::create_dir_all(&options.root)
            .map_err(io(format!("creating {}", options.root.display())))?;
        Ok(LocalCluster {
            options,
            bins,
            nodes: Vec::new(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.options.root
    }

    /// Keeps the root directory (state and logs) when the cluster is
    /// dropped, e.g. after a failure.
    pub fn keep_files(&mut self) {
        self.options.keep = true;
    }

    /// The nodes started so far (running or not).
    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&LocalNode, LocalError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| LocalError::UnknownNode(name.to_string()))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut LocalNode, LocalError> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| LocalError::UnknownNode(name.to_string()))
    }

    /// Starts the first manager (`swarmd init`) on `ip` and waits until its
    /// control socket answers. `extra` goes to `swarmd` as is.
    pub async fn init(&mut self, name: &str, ip: &str, extra: &[&str]) -> Result<(), LocalError> {
        let node = LocalNode::new(name, ip, &self.options, Role::Manager, extra);
        self.nodes.push(node);
        let args = vec!["init".to_string()];
        self.spawn(name, args)?;
        self.wait_manager_ready(name).await
    }

    /// Joins a node through a running manager with the `role`'s join
    /// token, and waits until the cluster lists it as ready (and, for a
    /// manager, until its control socket answers).
    pub async fn join(
        &mut self,
        name: &str,
        ip: &str,
        role: Role,
        extra: &[&str],
    ) -> Result<(), LocalError> {
        let token = self.join_token(role).await?;
        let via = self.live_manager_addr()?;
        self.join_with_token(name, ip, role, extra, &token, &via)?;
        self.wait_node_ready(name).await?;
        if role == Role::Manager {
            self.wait_manager_ready(name).await?;
        }
        Ok(())
    }

    /// Starts `swarmd join` with any token, without waiting: for tests of
    /// refused joins. The process is tracked like any node.
    pub fn join_with_token(
        &mut self,
        name: &str,
        ip: &str,
        role: Role,
        extra: &[&str],
        token: &str,
        via: &str,
    ) -> Result<(), LocalError> {
        let node = LocalNode::new(name, ip, &self.options, role, extra);
        self.nodes.push(node);
        let args = vec![
            "join".to_string(),
            "--token".to_string(),
            token.to_string(),
            via.to_string(),
        ];
        self.spawn(name, args)
    }

    /// The join token of `role`, read from a live manager.
    pub async fn join_token(&self, role: Role) -> Result<String, LocalError> {
        let out = self.ctl(&["cluster", "join-token", "-q", role.name()])?;
        Ok(out.trim().to_string())
    }

    fn spawn(&mut self, name: &str, mut args: Vec<String>) -> Result<(), LocalError> {
        let swarmd = self.bins.swarmd.clone();
        let tick = self.options.raft_tick.clone();
        let node = self.node_mut(name)?;
        args.extend(node.common_args(&tick));
        node.spawn(&swarmd, &args)
    }

    /// Kills a node with SIGKILL (its task processes keep running, as on a
    /// machine whose daemon crashed).
    pub fn kill(&mut self, name: &str) -> Result<(), LocalError> {
        self.node_mut(name)?.kill()
    }

    /// Stops a node with SIGTERM (a clean shutdown stops its tasks).
    pub fn stop(&mut self, name: &str) -> Result<(), LocalError> {
        self.node_mut(name)?.terminate(Duration::from_secs(20))
    }

    /// Restarts a stopped node from its state directory (`swarmd run`).
    pub async fn restart(&mut self, name: &str) -> Result<(), LocalError> {
        let role = self.node(name)?.role;
        self.spawn(name, vec!["run".to_string()])?;
        if role == Role::Manager {
            self.wait_manager_ready(name).await?;
        }
        self.wait_node_ready(name).await
    }

    /// Waits for `name`'s process to exit on its own (a refused join) and
    /// returns its exit code (None: killed by a signal).
    pub fn wait_exit(&mut self, name: &str, limit: Duration) -> Result<Option<i32>, LocalError> {
        self.node_mut(name)?.wait_exit(limit)
    }

    /// How many task processes recorded in `name`'s state directory are
    /// alive (whether or not its `swarmd` runs).
    pub fn live_task_processes(&self, name: &str) -> Result<usize, LocalError> {
        Ok(cleanup::live_task_processes(&self.node(name)?.state_dir).len())
    }

    /// The address of a running manager.
    pub fn live_manager_addr(&self) -> Result<String, LocalError> {
        self.nodes
            .iter()
            .find(|n| n.role == Role::Manager && n.is_running())
            .map(|n| n.addr.clone())
            .ok_or(LocalError::NoManager)
    }

    /// Runs `swarmctl` against the first running manager whose socket
    /// answers and returns its standard output.
    pub fn ctl(&self, args: &[&str]) -> Result<String, LocalError> {
        let mut last = LocalError::NoManager;
        for n in self.nodes.iter().filter(|n| n.role == Role::Manager) {
            if !n.is_running() || !n.socket().exists() {
                continue;
            }
            let out = Command::new(&self.bins.swarmctl)
                .arg("--socket")
                .arg(n.socket())
                .args(args)
                .output()
                .map_err(io("running swarmctl"))?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            last = LocalError::Ctl {
                args: args.join(" "),
                stderr: stderr.trim().to_string(),
            };
            // A manager that cannot reach the leader says so; try another.
            if !is_unavailable(&stderr) {
                return Err(last);
            }
        }
        Err(last)
    }

    /// Polls `check` every 200 ms until it returns `Some`, for at most
    /// `limit`. `check` may fail transiently (a manager restarting); the
    /// last error is reported on timeout. Fails early when a node that
    /// should run has exited.
    pub async fn wait_for<T, F, Fut>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: F,
    ) -> Result<T, LocalError>
    where
        F: FnMut(query::Api) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, LocalError>>,
    {
        let start = Instant::now();
        let mut last: Option<String>;
        loop {
            for n in &mut self.nodes {
                n.check_alive()?;
            }
            match self.api().await {
                Ok(api) => match check(api).await {
                    Ok(Some(v)) => return Ok(v),
                    Ok(None) => last = None,
                    Err(e) => last = Some(e.to_string()),
                },
                Err(e) => last = Some(e.to_string()),
            }
            if start.elapsed() > limit {
                return Err(LocalError::Timeout {
                    what: what.to_string(),
                    after: limit,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A control API client on the first running manager that answers.
    pub async fn api(&self) -> Result<query::Api, LocalError> {
        for n in self.nodes.iter().filter(|n| n.role == Role::Manager) {
            if !n.is_running() || !n.socket().exists() {
                continue;
            }
            if let Ok(api) = query::Api::connect(&n.socket()).await {
                return Ok(api);
            }
        }
        Err(LocalError::NoManager)
    }

    async fn wait_manager_ready(&mut self, name: &str) -> Result<(), LocalError> {
        let socket = self.node(name)?.socket();
        let what = format!("manager {name} to answer on {}", socket.display());
        let limit = Duration::from_secs(60);
        let start = Instant::now();
        loop {
            self.node_mut(name)?.check_alive()?;
            if socket.exists()
                && let Ok(api) = query::Api::connect(&socket).await
                && api.nodes().await.is_ok()
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(LocalError::Timeout {
                    what,
                    after: limit,
                    last: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_node_ready(&mut self, name: &str) -> Result<(), LocalError> {
        let host = name.to_string();
        self.wait_for(
            &format!("node {name} to be ready"),
            Duration::from_secs(60),
            |api| {
                let host = host.clone();
                async move { Ok(api.node_by_hostname(&host).await?.filter(query::is_ready)) }
            },
        )
        .await
        .map(|_| ())
    }
}

fn is_unavailable(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("unavailable") || s.contains("cannot reach") || s.contains("no leader")
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.terminate(Duration::from_secs(10));
        }
        for n in &self.nodes {
            cleanup::kill_leftover_tasks(&n.state_dir);
        }
        if !self.options.keep {
            let _ = std::fs::remove_dir_all(&self.options.root);
        }
    }
}
