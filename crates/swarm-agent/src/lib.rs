//! The swarm-rs worker: the agent a node runs to take part in a cluster.
//!
//! - [`Agent`]: joins the cluster (first start: the join token's digest
//!   pins the root CA, a CSR gets the node certificate, key and
//!   certificate are stored 0600 under `<state dir>/certificates`), then
//!   restarts from the stored certificate; keeps a dispatcher session over
//!   mutual TLS, heartbeats at the period the manager asks for, follows
//!   the assignments stream, reconnects to any known manager with
//!   jittered exponential backoff (following a follower's
//!   `swarm-leader-addr` redirect), and renews its certificate between
//!   50% and 80% of its life. Beside the session, it serves the log
//!   subscriptions the leader hands out (`swarmctl service logs`): the
//!   last lines of the selected tasks, then new lines as they come (see
//!   [`Controller::log_buffer`]).
//! - [`Worker`]: the task manager. One runner per task moves it forward
//!   through ACCEPTED, PREPARING, READY, STARTING, RUNNING to COMPLETE,
//!   FAILED or SHUTDOWN, honours the desired state (READY: prepare only;
//!   RUNNING or COMPLETE: run; SHUTDOWN and above: stop with the stop
//!   signal and grace period), persists what it observed in a local redb
//!   database and reports statuses in batches.
//! - [`Executor`] / [`Controller`]: the seam to what runs tasks, with a
//!   [`conformance`] suite. [`ProcessExecutor`] (the default) runs tasks as
//!   child processes; see [`exec::process`] for the task directory layout,
//!   where secrets (tmpfs) and configs go, and the environment.
//!   `DockerExecutor` (cargo feature `docker`, on by default) runs them as
//!   containers of the local Docker engine, see `exec::docker`.
//!   [`exec::oci::OciExecutor`] runs them as OCI containers through runc,
//!   from root filesystems in a local image store.
//! - [`network::NetworkAttacher`]: overlay networking for tasks (off by
//!   default, [`AgentBuilder::networking`]): a namespace per task joined
//!   to its VXLAN networks, the embedded DNS at 127.0.0.11 and the
//!   services' VIPs, fed from the manager's network views.
//!
//! # Example: a worker node
//!
//! ```no_run
//! use std::sync::Arc;
//! use swarm_agent::{Agent, ProcessExecutor};
//!
//! # async fn demo() -> Result<(), swarm_agent::AgentError> {
//! let agent = Agent::builder("/var/lib/swarmd")
//!     .manager("10.0.0.1:4242")
//!     .join_token("SWMTKN-1-...")
//!     .executor(Arc::new(ProcessExecutor::new("/var/lib/swarmd/tasks")))
//!     .label("zone", "a")
//!     .build()?;
//! // Runs until Ctrl-C; `Agent::start` returns a handle instead.
//! agent
//!     .run(async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await
//! # }
//! ```

//!
//! Or keep a handle, e.g. to report the node id:
//!
//! ```no_run
//! # async fn demo(agent: swarm_agent::Agent) -> Result<(), swarm_agent::AgentError> {
//! let handle = agent.start().await?; // joins, or loads the stored certificate
//! println!("node {}", handle.node_id());
//! handle.connected().await; // a session with a manager is open
//! // ... later
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # State directory
//!
//! ```text
//! <state dir>/certificates/{node.key (0600), node.crt, root.crt}
//! <state dir>/tasks.redb          the local task database
//! <state dir>/tasks/<task id>/    task directories of the default process executor
//! ```
//!
//! # Contracts with the manager
//!
//! - Desired states: up to READY = prepare only; RUNNING or COMPLETE = run;
//!   SHUTDOWN and above (or no longer assigned) = stop.
//! - A task the agent has started is never started again, even after an
//!   agent restart: a task found gone is reported FAILED with message
//!   `agent restarted`. Orchestrators replace it.
//! - Statuses are reported in order, forward only, with `applied_by` set to
//!   the node id; after a reconnect the latest status of each task the
//!   manager is behind on is sent again.

#![forbid(unsafe_code)]

pub mod agent;
pub mod backoff;
pub mod conformance;
pub mod error;
pub mod exec;
pub mod heartbeat;
mod log_publisher;
pub mod managers;
pub mod network;
pub mod node;
mod session;
pub mod taskdb;
pub mod worker;

pub use agent::{Agent, AgentBuilder, AgentHandle};
pub use error::{AgentError, SessionError};
#[cfg(feature = "docker")]
pub use exec::docker::DockerExecutor;
pub use exec::process::ProcessExecutor;
pub use exec::{
    Controller, Dependencies, ExecError, Executor, ExitStatus, LogBuffer, LogLine, LogReader,
    Recovered,
};
pub use session::LEADER_ADDR_KEY;
pub use worker::{LogSource, StatusReceiver, Worker};
