//! The swarm-rs worker.

#![forbid(unsafe_code)]

pub mod exec;
pub mod node;
pub mod taskdb;
pub mod worker;

pub use exec::process::ProcessExecutor;
pub use exec::{Controller, Dependencies, ExecError, Executor, ExitStatus, Recovered};
pub mod conformance;
pub use worker::{StatusReceiver, Worker};
