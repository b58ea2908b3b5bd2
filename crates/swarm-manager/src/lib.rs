//! The swarm-rs manager: where the crates become an orchestrator.
//!
//! A [`Manager`] is one member of a cluster's control plane. Every manager
//! runs a raft member ([`swarm_raft`]) replicating a [`swarm_store::Store`],
//! and serves one mutual-TLS gRPC address ([`swarm_pki`] certificates):
//!
//! | service | who may call | what |
//! |---|---|---|
//! | `Control` ([`control`]) | manager certificates, the local socket | create/inspect/update/remove services, networks, secrets, configs, nodes, tasks, the cluster |
//! | `Dispatcher` ([`dispatcher`]) | worker and manager certificates | agents' sessions, heartbeats, assignments, status reports |
//! | `NodeCa` ([`ca`]) | anyone with a join token; nodes renewing | certificates for joining and renewing nodes |
//! | `Raft`, `RaftMembership` ([`membership`]) | manager certificates | replication, joining managers |
//! | `Logs`, `LogBroker` ([`logbroker`]) | clients; agents | task logs, relayed (never stored in raft) |
//! | `Health` ([`health`]) | anyone | gRPC health checks |
//!
//! Reads are answered from the local store; writes are validated, checked
//! against the object version they were read at, and committed through
//! raft; a follower forwards them to the leader.
//!
//! The leader alone runs the orchestration loops, started when it wins an
//! election and stopped when it loses it: the [`orchestrator`]s (services
//! into tasks, restarts, rolling updates), the [`allocator`] (subnets,
//! addresses, VIPs, published ports), the [`scheduler_loop`] (placement
//! with [`swarm_scheduler`], debounced like SwarmKit's), the dispatcher's
//! node-liveness decisions, and the role manager (promotions, demotions).
//! Their state lives in the store, so a new leader continues where the old
//! one stopped.
//!
//! # Example: a one-manager cluster
//!
//! ```
//! use swarm_api::v1::control_client::ControlClient;
//! use swarm_api::v1::{Annotations, CreateNetworkRequest, NetworkSpec};
//! use swarm_manager::ManagerBuilder;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let state = std::env::temp_dir().join(format!("swarm-manager-doc-{}", std::process::id()));
//! let manager = ManagerBuilder::new(&state)
//!     .listen_addr("127.0.0.1:0".parse()?)
//!     .control_socket(state.join("control.sock"))
//!     .raft_config(swarm_raft::RaftConfig::fast())
//!     .start()
//!     .await?;
//! println!("workers join with: {}", manager.join_tokens().unwrap().worker);
//!
//! let channel = swarm_manager::local::local_channel(manager.control_socket().unwrap()).await?;
//! let mut control = ControlClient::new(channel);
//! control
//!     .create_network(CreateNetworkRequest {
//!         spec: Some(NetworkSpec {
//!             annotations: Some(Annotations { name: "backend".into(), ..Default::default() }),
//!             ..Default::default()
//!         }),
//!     })
//!     .await?;
//! manager.shutdown().await;
//! # std::fs::remove_dir_all(&state).ok();
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod allocator;
pub mod auth;
pub mod ca;
pub mod control;
pub mod dispatcher;
pub mod error;
pub mod health;
pub mod info;
mod leadership;
pub mod local;
pub mod logbroker;
mod manager;
pub mod membership;
pub mod metrics;
pub mod orchestrator;
mod retry;
pub mod scheduler_loop;
pub mod state;
mod stoppable;
pub mod transport;

pub use error::ManagerError;
pub use manager::{Manager, ManagerBuilder};
