//! Lifecycle pieces shared by the executors: the exit status a
//! controller publishes once its task ends, the stop sequence (signal,
//! grace period, kill) and the health-check loop of executors that run
//! checks themselves.
//!
//! Each executor says how to signal its task (a process group, the Docker
//! engine, `runc kill`) and how to run one check; the timing logic lives
//! here once.

use std::future::Future;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::watch;

use super::process::health::{HealthPlan, HealthState};
use super::{ExecError, ExitStatus};

/// How long to wait for a killed task to be gone.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long an unhealthy verdict waits for the task to end on its own
/// before the task is killed.
pub(crate) const NATURAL_END_WINDOW: Duration = Duration::from_millis(500);

/// Where a controller is in a task's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing done yet.
    New,
    /// Ready to start (files, image, container or bundle made).
    Prepared,
    /// Started.
    Started,
    /// Shut down before it was started: it never will be.
    Stopped,
    /// Removed.
    Removed,
}

/// The first step of `shutdown`: a task not started yet is marked stopped
/// (it never will start). True when the task was started and must be
/// stopped.
pub(crate) async fn shutdown_needs_stop(phase: &tokio::sync::Mutex<Phase>) -> bool {
    let mut phase = phase.lock().await;
    match *phase {
        Phase::New | Phase::Prepared => {
            *phase = Phase::Stopped;
            false
        }
        Phase::Started => true,
        Phase::Stopped | Phase::Removed => false,
    }
}

/// The first step of `wait`: refused before a start, after a shutdown
/// that came before the start, and after a remove unless the task's end
/// was recorded (`exited`).
pub(crate) async fn wait_allowed(
    phase: &tokio::sync::Mutex<Phase>,
    exited: bool,
) -> Result<(), ExecError> {
    match *phase.lock().await {
        Phase::Started => Ok(()),
        Phase::New | Phase::Prepared => Err(ExecError::State("wait before start")),
        Phase::Stopped => Err(ExecError::State("task was shut down before it started")),
        Phase::Removed if !exited => Err(ExecError::State("task was removed")),
        Phase::Removed => Ok(()),
    }
}

/// `wait` for executors that run health checks themselves: the task's
/// exit, or, once `check` failed as `plan` says, the task killed with
/// `kill` and an [`ExecError::Unhealthy`] (a natural end right after the
/// verdict wins, see [`natural_end`]). An earlier verdict is returned
/// again.
pub(crate) async fn wait_checked<C, CF, K, KF>(
    task_id: &str,
    plan: &HealthPlan,
    state: &parking_lot::Mutex<Option<HealthState>>,
    exit: &ExitCell,
    check: C,
    kill: K,
) -> Result<ExitStatus, ExecError>
where
    C: FnMut() -> CF,
    CF: Future<Output = Option<String>>,
    K: FnOnce() -> KF,
    KF: Future<Output = Result<(), ExecError>>,
{
    if let Some(why) = state.lock().as_ref().and_then(|h| h.unhealthy.clone()) {
        return Err(ExecError::Unhealthy(why));
    }
    tokio::select! {
        status = exit.wait() => Ok(status),
        why = health_loop(plan, state, check) => {
            if let Some(status) = natural_end(exit.wait()).await {
                // The verdict is void: later waits report the exit too.
                if let Some(h) = state.lock().as_mut() {
                    h.unhealthy = None;
                }
                return Ok(status);
            }
            tracing::info!(task = %task_id, reason = %why, "task unhealthy: stopping it");
            kill().await?;
            Err(ExecError::Unhealthy(why))
        }
    }
}

/// After an unhealthy verdict: the task's exit if it comes within
/// [`NATURAL_END_WINDOW`]. A check run as the task was ending fails (a
/// container being torn down cannot be exec'd into); a natural end that
/// follows at once wins over the verdict.
pub(crate) async fn natural_end(exit: impl Future<Output = ExitStatus>) -> Option<ExitStatus> {
    tokio::time::timeout(NATURAL_END_WINDOW, exit).await.ok()
}

/// The exit status of a task once it ended; set once by whoever follows
/// the task, read by `wait`, `shutdown` and status reports.
#[derive(Debug)]
pub(crate) struct ExitCell(watch::Sender<Option<ExitStatus>>);

impl Default for ExitCell {
    fn default() -> Self {
        ExitCell(watch::channel(None).0)
    }
}

impl ExitCell {
    /// How the task ended, if it did.
    pub(crate) fn get(&self) -> Option<ExitStatus> {
        *self.0.borrow()
    }

    /// A handle for the task that follows the process.
    pub(crate) fn sender(&self) -> watch::Sender<Option<ExitStatus>> {
        self.0.clone()
    }

    /// Records how the task ended.
    pub(crate) fn set(&self, status: ExitStatus) {
        self.0.send_replace(Some(status));
    }

    /// Waits until the task ended.
    pub(crate) async fn wait(&self) -> ExitStatus {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close first.
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or(ExitStatus::code(-1)),
            Err(_) => ExitStatus::code(-1),
        }
    }
}

/// Stops a started task: `signal`, then `SIGKILL` once `grace` has passed
/// without an exit; returns once `exit` is set. `send` delivers a signal
/// to the task (succeeding when there is nothing left to signal);
/// `survived` is the error when the task outlives `SIGKILL`.
pub(crate) async fn stop_with_grace<F, Fut>(
    exit: &ExitCell,
    grace: Duration,
    signal: Signal,
    mut send: F,
    survived: &'static str,
) -> Result<(), ExecError>
where
    F: FnMut(Signal) -> Fut,
    Fut: Future<Output = Result<(), ExecError>>,
{
    if exit.get().is_some() {
        return Ok(());
    }
    send(signal).await?;
    if tokio::time::timeout(grace, exit.wait()).await.is_err() {
        tracing::debug!("grace period over: killing");
        send(Signal::SIGKILL).await?;
        tokio::time::timeout(KILL_WAIT, exit.wait())
            .await
            .map_err(|_| ExecError::State(survived))?;
    }
    Ok(())
}

/// Runs `plan`'s checks with `check` (`None`: healthy, else why not)
/// until the task is unhealthy; returns why. Progress is kept in `state`
/// so that a later call (another `wait`) goes on where this one stopped.
pub(crate) async fn health_loop<F, Fut>(
    plan: &HealthPlan,
    state: &parking_lot::Mutex<Option<HealthState>>,
    mut check: F,
) -> String
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    loop {
        let next = {
            let mut state = state.lock();
            let s =
                state.get_or_insert_with(|| HealthState::new(tokio::time::Instant::now(), plan));
            s.next_check
        };
        tokio::time::sleep_until(next).await;
        let failure = check().await;
        let now = tokio::time::Instant::now();
        let mut state = state.lock();
        let s = state.get_or_insert_with(|| HealthState::new(now, plan));
        if let Some(why) = s.record(plan, now, failure) {
            return why;
        }
    }
}

/// Runs one check command to its end or its timeout: `None` when it
/// exited 0, else why not. The child is killed on timeout.
pub(crate) async fn run_check_command(
    mut cmd: tokio::process::Command,
    timeout: Duration,
) -> Option<String> {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot run the check: {e}")),
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) if s.success() => None,
        Ok(Ok(s)) => Some(format!("check exited with {s}")),
        Ok(Err(e)) => Some(format!("check failed: {e}")),
        Err(_) => {
            let _ = child.start_kill();
            Some(format!("check timed out after {timeout:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stubborn_task_is_killed_after_the_grace_period() {
        let exit = Arc::new(ExitCell::default());
        let sent = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let began = tokio::time::Instant::now();
        let result = stop_with_grace(
            &exit,
            Duration::from_secs(5),
            Signal::SIGTERM,
            |s| {
                sent.lock().push((s, began.elapsed()));
                let exit = exit.clone();
                async move {
                    if s == Signal::SIGKILL {
                        exit.set(ExitStatus::signaled(9));
                    }
                    Ok(())
                }
            },
            "survived",
        )
        .await;
        assert!(result.is_ok());
        let sent = sent.lock().clone();
        assert_eq!(
            sent,
            [
                (Signal::SIGTERM, Duration::ZERO),
                (Signal::SIGKILL, Duration::from_secs(5))
            ]
        );
        // Stopping an ended task sends nothing.
        let again = stop_with_grace(
            &exit,
            Duration::ZERO,
            Signal::SIGTERM,
            |_| async { Err(ExecError::State("must not be called")) },
            "survived",
        )
        .await;
        assert!(again.is_ok());
    }
}
