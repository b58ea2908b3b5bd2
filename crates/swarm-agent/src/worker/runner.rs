//! Drives one task: executes the steps of [`super::machine`] with the
//! task's controller and reports every state it reaches.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use swarm_api::v1::{ContainerStatus, Task, TaskState, TaskStatus, TaskStatusUpdate, Timestamp};
use tokio::sync::{mpsc, watch};

use super::machine::{Step, next_step};
use crate::exec::{Controller, Dependencies, ExecError, Executor, ExitStatus, Recovered};
use crate::taskdb::TaskDb;

/// What the manager currently says about a task.
#[derive(Debug, Clone)]
pub(crate) struct Assigned {
    /// The task as last assigned.
    pub(crate) task: Task,
    /// No longer assigned: stop it, clean up, forget it.
    pub(crate) removed: bool,
}

/// What every runner shares.
#[derive(Clone)]
pub(crate) struct RunnerContext {
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) db: TaskDb,
    pub(crate) reports: mpsc::UnboundedSender<TaskStatusUpdate>,
    pub(crate) node_id: Arc<Mutex<String>>,
    pub(crate) log_sources: super::LogSources,
}

/// One task's runner.
pub(crate) struct Runner {
    ctx: RunnerContext,
    assigned: watch::Receiver<Assigned>,
    deps: watch::Receiver<Dependencies>,
    /// The agent's view of the task (status = last observed), shared
    /// with the worker for inspection.
    local: Arc<Mutex<Task>>,
    controller: Option<Arc<dyn Controller>>,
    started_here: bool,
    /// Loaded from the database: wait for the first assignment.
    resumed: bool,
}

fn stop_params(task: &Task) -> (Duration, String) {
    let c = task.spec.as_ref().and_then(|s| s.container.as_ref());
    let grace = c
        .and_then(|c| c.stop_grace_period.as_ref())
        .and_then(|d| d.to_std().ok())
        .unwrap_or(swarm_api::defaults::STOP_GRACE_PERIOD);
    let signal = c
        .map(|c| c.stop_signal.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| swarm_api::defaults::STOP_SIGNAL.to_string());
    (grace, signal)
}

impl Runner {
    pub(crate) fn new(
        ctx: RunnerContext,
        assigned: watch::Receiver<Assigned>,
        deps: watch::Receiver<Dependencies>,
        local: Arc<Mutex<Task>>,
        resumed: bool,
    ) -> Self {
        Runner {
            ctx,
            assigned,
            deps,
            local,
            controller: None,
            started_here: false,
            resumed,
        }
    }

    fn observed(&self) -> TaskState {
        self.local.lock().state()
    }

    /// Records and reports a new status, if it moves the task forward (or
    /// says something new in the same state).
    async fn report(
        &self,
        state: TaskState,
        message: &str,
        err: Option<&ExecError>,
        exit: Option<ExitStatus>,
    ) {
        let snapshot = {
            let mut local = self.local.lock();
            let current = local.status.clone().unwrap_or_default();
            let err = err.map(ToString::to_string).unwrap_or_default();
            if state < current.state()
                || (state == current.state() && current.message == message && current.err == err)
            {
                return;
            }
            let mut container = self
                .controller
                .as_ref()
                .map(|c| c.container_status())
                .unwrap_or_default();
            if let Some(exit) = exit {
                container.exit_code = exit.code;
            }
            local.status = Some(TaskStatus {
                timestamp: Some(Timestamp::now()),
                state: state.into(),
                message: message.to_string(),
                err,
                container_status: (container != ContainerStatus::default()).then_some(container),
                port_status: None,
                applied_by: self.ctx.node_id.lock().clone(),
            });
            local.clone()
        };
        tracing::debug!(task = %snapshot.id, state = state.as_str_name(), message, "task status");
        if let Err(e) = self.ctx.db.put(snapshot.clone()).await {
            tracing::error!(task = %snapshot.id, error = %e, "cannot persist the task status");
        }
        let _ = self.ctx.reports.send(TaskStatusUpdate {
            task_id: snapshot.id,
            status: snapshot.status,
        });
    }

    fn controller(&mut self) -> Result<Arc<dyn Controller>, ExecError> {
        if let Some(c) = &self.controller {
            return Ok(c.clone());
        }
        let task = self.local.lock().clone();
        let deps = self.deps.borrow().clone();
        let c: Arc<dyn Controller> = Arc::from(self.ctx.executor.controller(&task, &deps)?);
        if let Some(buffer) = c.log_buffer() {
            self.ctx.log_sources.add(&task, buffer);
        }
        self.controller = Some(c.clone());
        Ok(c)
    }

    /// Runs until the task is removed (and cleaned up) or the worker goes.
    pub(crate) async fn run(mut self) {
        if self.resumed && self.assigned.changed().await.is_err() {
            return;
        }
        loop {
            let assigned = self.assigned.borrow_and_update().clone();
            let desired = if assigned.removed {
                TaskState::Remove
            } else {
                assigned.task.desired_state()
            };
            self.local.lock().desired_state = desired.into();
            let step = next_step(self.observed(), desired, self.started_here);
            match step {
                Step::Accept => {
                    self.report(TaskState::Accepted, "accepted", None, None)
                        .await
                }
                Step::Prepare => self.prepare().await,
                Step::Start => self.start().await,
                Step::Recover => self.recover(desired).await,
                Step::Wait => {
                    if !self.wait().await {
                        return;
                    }
                }
                Step::Stop => self.stop().await,
                Step::Hold | Step::Done => {
                    if assigned.removed {
                        self.cleanup().await;
                        return;
                    }
                    if self.assigned.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn prepare(&mut self) {
        self.report(TaskState::Preparing, "preparing", None, None)
            .await;
        let result = match self.controller() {
            Ok(c) => c.prepare().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => self.report(TaskState::Ready, "prepared", None, None).await,
            Err(e) => {
                self.report(TaskState::Rejected, "preparing failed", Some(&e), None)
                    .await;
            }
        }
    }

    async fn start(&mut self) {
        self.report(TaskState::Starting, "starting", None, None)
            .await;
        let c = match self.controller() {
            Ok(c) => c,
            Err(e) => {
                return self
                    .report(TaskState::Rejected, "starting failed", Some(&e), None)
                    .await;
            }
        };
        // A restarted agent holds a new controller: prepare is idempotent.
        let result = match c.prepare().await {
            Ok(()) => c.start().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.started_here = true;
                self.report(TaskState::Running, "started", None, None).await;
            }
            Err(e) => {
                self.report(TaskState::Failed, "starting failed", Some(&e), None)
                    .await;
            }
        }
    }

    async fn recover(&mut self, desired: TaskState) {
        let recovered = match self.controller() {
            Ok(c) => c.recover().await,
            Err(e) => Err(e),
        };
        match recovered {
            Ok(Recovered::Running) => self.started_here = true,
            Ok(Recovered::Gone) if desired >= TaskState::Shutdown => {
                self.report(
                    TaskState::Shutdown,
                    "shutdown (agent restarted)",
                    None,
                    None,
                )
                .await;
            }
            Ok(Recovered::Gone) => {
                let err = ExecError::State("the task's process is gone after an agent restart");
                self.report(TaskState::Failed, "agent restarted", Some(&err), None)
                    .await;
            }
            Err(e) => {
                self.report(TaskState::Failed, "agent restarted", Some(&e), None)
                    .await;
            }
        }
    }

    /// Waits for the process to exit or the assignment to change; false
    /// when the worker is gone.
    async fn wait(&mut self) -> bool {
        let c = match self.controller() {
            Ok(c) => c,
            Err(e) => {
                self.report(TaskState::Failed, "lost the task", Some(&e), None)
                    .await;
                return true;
            }
        };
        tokio::select! {
            exit = c.wait() => {
                let desired = {
                    let a = self.assigned.borrow();
                    if a.removed { TaskState::Remove } else { a.task.desired_state() }
                };
                match exit {
                    Ok(exit) if desired >= TaskState::Shutdown => {
                        self.report(TaskState::Shutdown, "shutdown", None, Some(exit)).await;
                    }
                    Ok(exit) => match exit.check() {
                        Ok(exit) => self.report(TaskState::Complete, "finished", None, Some(exit)).await,
                        Err(e) => self.report(TaskState::Failed, "task failed", Some(&e), Some(exit)).await,
                    },
                    Err(e @ ExecError::Unhealthy(_)) => {
                        let exit = c.container_status().exit_code;
                        self.report(TaskState::Failed, "unhealthy", Some(&e), Some(ExitStatus::code(exit))).await;
                    }
                    Err(e) => self.report(TaskState::Failed, "lost the task", Some(&e), None).await,
                }
                true
            }
            changed = self.assigned.changed() => changed.is_ok(),
        }
    }

    async fn stop(&mut self) {
        let task = self.local.lock().clone();
        if let Some(c) = self.controller.clone() {
            let (grace, signal) = stop_params(&task);
            if let Err(e) = c.shutdown(grace, &signal).await {
                tracing::warn!(task = %task.id, error = %e, "shutdown failed: terminating");
                if let Err(e) = c.terminate().await {
                    return self
                        .report(TaskState::Failed, "shutdown failed", Some(&e), None)
                        .await;
                }
            }
        }
        let exit = self.controller.as_ref().and_then(|c| {
            (c.container_status().pid > 0).then(|| ExitStatus::code(c.container_status().exit_code))
        });
        self.report(TaskState::Shutdown, "shutdown", None, exit)
            .await;
    }

    /// The task is no longer assigned: release what it holds, forget it.
    async fn cleanup(&mut self) {
        let id = self.local.lock().id.clone();
        let touched = self.observed() >= TaskState::Preparing;
        if (self.controller.is_some() || touched)
            && let Ok(c) = self.controller()
            && let Err(e) = c.remove().await
        {
            tracing::warn!(task = %id, error = %e, "removing the task failed");
        }
        self.ctx.log_sources.remove(&id);
        if let Err(e) = self.ctx.db.delete(id.clone()).await {
            tracing::error!(task = %id, error = %e, "cannot forget the task");
        }
    }
}
