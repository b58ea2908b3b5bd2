//! The seam between the task manager and whatever runs tasks.
//!
//! An [`Executor`] describes the node and makes one [`Controller`] per task;
//! the controller drives one task's process or container through
//! prepare, start, wait, shutdown/terminate and remove. The task manager
//! ([`crate::worker`]) owns the task state machine and calls these in
//! order; an executor never reports task states itself.
//!
//! Every executor should pass the [`crate::conformance`] suite.

mod checks;
mod deps;
#[cfg(feature = "docker")]
pub mod docker;
mod error;
mod exit;
pub(crate) mod files;
pub(crate) mod lifecycle;
pub mod logs;
pub mod oci;
pub mod process;
mod signal;

use std::time::Duration;

use async_trait::async_trait;
use swarm_api::v1::{ContainerStatus, NodeDescription, Task};

pub use deps::Dependencies;
pub use error::ExecError;
pub use exit::ExitStatus;
pub use logs::{LogBuffer, LogLine, LogReader};
pub use signal::parse_signal;

/// What an executor's [`Controller::recover`] found of a task after an
/// agent restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// Nothing runs for the task any more (or it could not be re-adopted
    /// and was stopped): the task manager reports it FAILED.
    Gone,
    /// The task still runs and [`Controller::wait`] follows it.
    Running,
}

/// Runs tasks on this node.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Short name reported in the node description (`process`, `runc`,
    /// `docker`).
    fn name(&self) -> &str;

    /// What this node offers: hostname, platform, resources, engine.
    async fn describe(&self) -> Result<NodeDescription, ExecError>;

    /// A controller for `task`. `deps` holds the secrets and configs
    /// assigned to this node (the controller picks those the task refers
    /// to). Cheap: no work is done before [`Controller::prepare`].
    fn controller(
        &self,
        task: &Task,
        deps: &Dependencies,
    ) -> Result<Box<dyn Controller>, ExecError>;
}

/// Drives one task. Methods take `&self` so that [`Controller::wait`] can
/// run while another call stops the task; implementations synchronise
/// internally. Every method is idempotent: calling it again after it
/// succeeded succeeds without doing the work twice.
#[async_trait]
pub trait Controller: Send + Sync {
    /// Makes everything ready to start (directories, files, secrets,
    /// images). An error here means the task cannot run on this node
    /// (the task manager reports REJECTED).
    async fn prepare(&self) -> Result<(), ExecError>;

    /// Starts the task's process. Returns once it has been started.
    async fn start(&self) -> Result<(), ExecError>;

    /// Waits until the started process exits and returns how it ended.
    /// A non-zero exit is not an error here: see [`ExitStatus::check`].
    async fn wait(&self) -> Result<ExitStatus, ExecError>;

    /// Stops the task: `signal` (e.g. `SIGTERM`), then a kill once `grace`
    /// has passed. Returns once the process is gone. A task that never
    /// started is simply marked stopped.
    async fn shutdown(&self, grace: Duration, signal: &str) -> Result<(), ExecError>;

    /// Kills the task at once.
    async fn terminate(&self) -> Result<(), ExecError>;

    /// Releases everything [`Controller::prepare`] made. Stops the task
    /// first if it still runs.
    async fn remove(&self) -> Result<(), ExecError>;

    /// After an agent restart, for a task that was started before it:
    /// re-adopt it if possible, else make sure nothing of it is left.
    async fn recover(&self) -> Result<Recovered, ExecError> {
        Ok(Recovered::Gone)
    }

    /// Container details for status reports (id, pid, exit code).
    fn container_status(&self) -> ContainerStatus {
        ContainerStatus::default()
    }

    /// The task's output, kept for log publishing (`service logs`): the
    /// agent reads the last lines of it and follows new ones (see
    /// [`LogBuffer::reader`]). The executor pushes every line of the
    /// task's stdout and stderr into it from the moment the task starts;
    /// the buffer is made with the controller, so it exists (empty) before
    /// [`Controller::start`]. `None` (the default) when the executor keeps
    /// no output: the task's logs are then empty.
    fn log_buffer(&self) -> Option<LogBuffer> {
        None
    }

    /// The most recent lines of output kept for the task (by default, a
    /// snapshot of [`Controller::log_buffer`]).
    fn logs(&self) -> Vec<LogLine> {
        self.log_buffer().map(|b| b.lines()).unwrap_or_default()
    }
}
