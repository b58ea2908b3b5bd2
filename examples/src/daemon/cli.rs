//! `swarmd`'s command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ctl::connect::{DEFAULT_STATE_DIR, SOCKET_NAME};

/// A swarm-rs node: manager and (soon) worker.
#[derive(Debug, Parser)]
#[command(name = "swarmd", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new cluster with this node as its first manager (or restart
    /// from the state directory if it already holds a node).
    Init {
        /// Node settings.
        #[command(flatten)]
        node: NodeOptions,
        /// Start a one-manager cluster from this node's existing state,
        /// dropping its raft peers.
        #[arg(long)]
        force_new_cluster: bool,
    },
    /// Join an existing cluster through one of its managers.
    Join {
        /// A join token (`swarmctl cluster join-token worker|manager`).
        #[arg(long, env = "SWARM_JOIN_TOKEN")]
        token: String,
        /// Node settings.
        #[command(flatten)]
        node: NodeOptions,
        /// A manager's address, `host:port`.
        manager: String,
    },
    /// Restart from an existing state directory.
    Run {
        /// Node settings.
        #[command(flatten)]
        node: NodeOptions,
    },
}

/// How tasks are run on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ExecutorKind {
    /// Plain processes (no image).
    #[default]
    Process,
    /// OCI containers with runc.
    Runc,
    /// Containers through the Docker engine.
    Docker,
}

impl ExecutorKind {
    /// The executor's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Process => "process",
            ExecutorKind::Runc => "runc",
            ExecutorKind::Docker => "docker",
        }
    }
}

/// Settings of any node.
#[derive(Debug, Clone, Args)]
pub struct NodeOptions {
    /// Where the node keeps its state (certificates, raft log).
    #[arg(long, env = "SWARMD_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Address the manager API listens on.
    #[arg(long, default_value = "0.0.0.0:4242")]
    pub listen_addr: SocketAddr,
    /// Address other nodes reach this node at (default: the listen
    /// address).
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// Address of the overlay data plane (VXLAN) on this node. Run as
    /// root, an IP here turns overlay networking on: tasks on overlay
    /// networks get their own namespaces (one swarmd per host: the VXLAN
    /// namespaces are named `swov-<vni>` in /run/netns).
    #[arg(long)]
    pub data_path_addr: Option<String>,
    /// The control socket [default: STATE_DIR/control.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// How tasks run.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Process)]
    pub executor: ExecutorKind,
    /// The image store of `--executor runc` (root filesystems by image
    /// name) [default: STATE_DIR/images].
    #[arg(long, env = "SWARMD_IMAGES_DIR")]
    pub images_dir: Option<PathBuf>,
    /// Node label KEY=VALUE (repeatable).
    #[arg(long)]
    pub label: Vec<String>,
    /// The host name the node reports [default: the machine's].
    #[arg(long)]
    pub hostname: Option<String>,
    /// active, pause or drain.
    #[arg(long, default_value = "active")]
    pub availability: String,
    /// Run no worker on this node (managers only).
    #[arg(long)]
    pub manager_only: bool,
    /// Serve Prometheus metrics on this address.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Raft tick: heartbeats every tick, elections after 10 ticks
    /// (SwarmKit's default is 1s; shorter suits tests and demos).
    #[arg(long, default_value = "1s")]
    pub raft_tick: String,
}

impl NodeOptions {
    /// The control socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.state_dir.join(SOCKET_NAME))
    }
}
