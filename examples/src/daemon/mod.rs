//! `swarmd`: one node of a cluster. It runs a manager (`init`, or `join`
//! with a manager token), restarts from its state directory (`run`, or
//! `init`/`join` on a directory that already holds a node), and will run
//! the node's worker through [`worker`] once `swarm-agent` is wired in.
//!
//! [`cli`] holds the arguments, [`node`] the start-up and shutdown,
//! [`logging`] the tracing set-up.

pub mod cli;
pub mod logging;
pub mod node;
pub mod worker;
