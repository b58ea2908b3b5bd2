//! `swarmctl`'s command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::connect::{CERT_DIR_NAME, DEFAULT_STATE_DIR, SOCKET_NAME, Target};
use super::render::format::Format;
use super::service_opts::{CreateOptions, UpdateOptions};

/// Drive a swarm-rs cluster through a manager's control API.
#[derive(Debug, Parser)]
#[command(name = "swarmctl", version, about)]
pub struct Cli {
    /// Where the manager is.
    #[command(flatten)]
    pub conn: ConnOptions,
    /// Output format of list and inspect commands.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the manager.
#[derive(Debug, Clone, Args)]
pub struct ConnOptions {
    /// The manager's local control socket
    /// [default: /var/lib/swarmd/control.sock].
    #[arg(long, env = "SWARM_SOCKET", global = true)]
    pub socket: Option<PathBuf>,
    /// A manager's address (`host:port`), reached with mutual TLS.
    #[arg(long, env = "SWARM_HOST", global = true)]
    pub host: Option<String>,
    /// Directory with a manager certificate, for --host
    /// [default: /var/lib/swarmd/certificates].
    #[arg(long, env = "SWARM_CERT_DIR", global = true)]
    pub cert_dir: Option<PathBuf>,
}

impl ConnOptions {
    /// The target these options name: `--host` wins over the socket.
    pub fn target(&self) -> Target {
        match &self.host {
            Some(addr) => Target::Remote {
                addr: addr.clone(),
                cert_dir: self
                    .cert_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR).join(CERT_DIR_NAME)),
            },
            None => Target::Socket(
                self.socket
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR).join(SOCKET_NAME)),
            ),
        }
    }
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage services.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Manage nodes.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage secrets.
    #[command(subcommand)]
    Secret(BlobCmd),
    /// Manage configs.
    #[command(subcommand)]
    Config(BlobCmd),
    /// Manage the cluster.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Deploy and manage stacks (compose files).
    #[command(subcommand)]
    Stack(StackCmd),
}

/// Waiting for convergence after a change.
#[derive(Debug, Clone, Args)]
pub struct WaitOptions {
    /// Return at once instead of following the rollout.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Give up following after this long, e.g. 2m.
    #[arg(long, default_value = "60s")]
    pub timeout: String,
    /// Print only the service id.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Create a service: IMAGE [COMMAND ARGS...].
    Create {
        /// Service settings.
        #[command(flatten)]
        opts: Box<CreateOptions>,
        /// Waiting.
        #[command(flatten)]
        wait: WaitOptions,
    },
    /// List services.
    #[command(alias = "list")]
    Ls {
        /// Only ids.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// List the tasks of services.
    Ps {
        /// Services (names or ids).
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Show services in detail (JSON).
    Inspect {
        /// Services (names or ids).
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Change a service.
    Update {
        /// Changes.
        #[command(flatten)]
        opts: Box<UpdateOptions>,
        /// Roll back to the previous spec instead.
        #[arg(long)]
        rollback: bool,
        /// Waiting.
        #[command(flatten)]
        wait: WaitOptions,
        /// The service.
        service: String,
    },
    /// Set replica counts: SERVICE=N ...
    Scale {
        /// SERVICE=REPLICAS pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Waiting.
        #[command(flatten)]
        wait: WaitOptions,
    },
    /// Roll a service back to its previous spec.
    Rollback {
        /// The service.
        service: String,
        /// Waiting.
        #[command(flatten)]
        wait: WaitOptions,
    },
    /// Remove services.
    #[command(alias = "remove")]
    Rm {
        /// Services (names or ids).
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Show a service's task logs.
    Logs {
        /// The service.
        service: String,
        /// Keep following new lines.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last N lines of each task.
        #[arg(long, short = 'n')]
        tail: Option<i64>,
        /// Only lines since a time (RFC 3339, e.g. 2026-11-21T10:00:00Z)
        /// or for a duration back from now (e.g. 10m, 1h30m).
        #[arg(long)]
        since: Option<String>,
        /// Show each line's time.
        #[arg(long, short = 't')]
        timestamps: bool,
    },
}

/// `node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List nodes.
    #[command(alias = "list")]
    Ls {
        /// Only ids.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Show nodes in detail (JSON).
    Inspect {
        /// Nodes (ids, prefixes or names).
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Change a node.
    Update {
        /// active, pause or drain.
        #[arg(long)]
        availability: Option<String>,
        /// worker or manager.
        #[arg(long)]
        role: Option<String>,
        /// Add or change a label KEY=VALUE.
        #[arg(long)]
        label_add: Vec<String>,
        /// Remove a label.
        #[arg(long)]
        label_rm: Vec<String>,
        /// The node.
        node: String,
    },
    /// Make nodes managers.
    Promote {
        /// Nodes.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Make nodes workers.
    Demote {
        /// Nodes.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Remove nodes from the cluster.
    #[command(alias = "remove")]
    Rm {
        /// Remove even a node that is not down.
        #[arg(long, short = 'f')]
        force: bool,
        /// Nodes.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

/// `network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        /// Driver.
        #[arg(long, short = 'd', default_value = "overlay")]
        driver: String,
        /// Subnet in CIDR form (default: from the cluster's pool).
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway of the subnet.
        #[arg(long)]
        gateway: Option<String>,
        /// No traffic leaves the network.
        #[arg(long)]
        internal: bool,
        /// Standalone containers may attach.
        #[arg(long)]
        attachable: bool,
        /// Label KEY=VALUE.
        #[arg(long)]
        label: Vec<String>,
        /// Driver option KEY=VALUE.
        #[arg(long, short = 'o')]
        opt: Vec<String>,
        /// Network name.
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only ids.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Show networks in detail (JSON).
    Inspect {
        /// Networks.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Networks.
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

/// `secret` and `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum BlobCmd {
    /// Create from a file, or `-` for standard input.
    Create {
        /// Label KEY=VALUE.
        #[arg(long, short = 'l')]
        label: Vec<String>,
        /// Name.
        name: String,
        /// File with the data (`-` = stdin).
        file: PathBuf,
    },
    /// List.
    #[command(alias = "list")]
    Ls {
        /// Only ids.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Show in detail (JSON, without data for secrets).
    Inspect {
        /// Names or ids.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove.
    #[command(alias = "remove")]
    Rm {
        /// Names or ids.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Which join token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The worker token.
    Worker,
    /// The manager token.
    Manager,
}

/// `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Show the cluster (JSON, keys removed).
    Inspect,
    /// Change cluster settings.
    Update {
        /// Terminated tasks kept per slot.
        #[arg(long)]
        task_history_limit: Option<i64>,
        /// Agents' heartbeat period, e.g. 5s.
        #[arg(long)]
        dispatcher_heartbeat: Option<String>,
        /// Validity of node certificates, e.g. 2160h.
        #[arg(long)]
        cert_expiry: Option<String>,
        /// Raft log entries between snapshots.
        #[arg(long)]
        snapshot_interval: Option<u64>,
    },
    /// Show (or rotate) a join token.
    JoinToken {
        /// Rotate the token first.
        #[arg(long)]
        rotate: bool,
        /// Print only the token.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// worker or manager.
        #[arg(value_enum)]
        role: Role,
    },
}

/// `stack` subcommands.
#[derive(Debug, Subcommand)]
pub enum StackCmd {
    /// Create or update a stack from a compose file.
    #[command(alias = "up")]
    Deploy {
        /// The compose file.
        #[arg(long = "compose-file", short = 'c')]
        compose_file: PathBuf,
        /// Wait for the services to converge.
        #[arg(long)]
        wait: bool,
        /// How long to wait with --wait.
        #[arg(long, default_value = "120s")]
        timeout: String,
        /// Stack name.
        name: String,
    },
    /// List stacks.
    #[command(alias = "list")]
    Ls,
    /// List the tasks of a stack.
    Ps {
        /// Stack name.
        name: String,
    },
    /// List the services of a stack.
    Services {
        /// Stack name.
        name: String,
    },
    /// Remove a stack.
    #[command(alias = "remove", alias = "down")]
    Rm {
        /// Stack name.
        name: String,
    },
}
