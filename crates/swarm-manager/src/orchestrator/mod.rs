//! Orchestrators (leader only): services become tasks, tasks that end are
//! restarted or replaced, spec changes roll out, finished tasks are reaped.
//!
//! Like SwarmKit's, the orchestrators only write desired states and new
//! tasks; agents report observed states. Unlike SwarmKit's event-driven
//! ones, they reconcile level-triggered: each pass reads a consistent view
//! of the services in question and decides from the objects alone, so all
//! their state (slots, restart history, update progress) lives in the
//! store and a new leader picks up exactly where the old one stood.
//!
//! - replicated services: `replicas` slots; a slot whose task is lost
//!   (node down or drained) is refilled at once, one whose task ended is
//!   restarted per the restart policy; scaling down stops the slots that
//!   are not running first, then those on the busiest nodes;
//! - global services: one slot per node that is up, not drained, matches
//!   the constraints (and, for new tasks, is active, not paused);
//! - replicated and global jobs: tasks desired COMPLETE, a new iteration
//!   on every spec change (see the `jobs` module);
//! - restart supervisor: condition, delay, max attempts within a window,
//!   with the history kept in a task label ([`RESTART_HISTORY_LABEL`]);
//! - rolling updater: parallelism, delay, monitor, failure action and
//!   order, recorded in the service's update status;
//! - reaper: the cluster's task history limit per slot.
//!
//! Tasks are created NEW with desired state RUNNING (COMPLETE for jobs);
//! the allocator moves them to PENDING and the scheduler to ASSIGNED.

mod jobs;
mod new_task;
mod pass;
mod plan;
mod reaper;
mod restart;
mod run;
mod service;
mod slots;
mod update;

pub use restart::RESTART_HISTORY_LABEL;
pub use run::run;

#[cfg(test)]
mod large_tests;
#[cfg(test)]
mod tests;
