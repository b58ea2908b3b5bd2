//! The task manager: keeps one runner per assigned task, feeds it the
//! manager's assignments, and collects the statuses the runners report.
//!
//! ```text
//! AssignmentsMessage ─► Worker::apply ─► Runner (one per task) ─► Controller
//!                                              │
//!                          redb (TaskDb) ◄─────┤
//!                   status receiver ◄──────────┘  (batched to the dispatcher)
//! ```
//!
//! Statuses only move forward. Every status is stored in the local task
//! database before it is reported, so an agent restarted with the same
//! state directory knows what it ran: a task it had started is never
//! started again; its process being gone, it is reported FAILED ("agent
//! restarted"), or SHUTDOWN when it was meant to stop anyway.

mod log_sources;
pub mod machine;
mod runner;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use swarm_api::v1::{
    AssignmentAction, AssignmentsMessage, AssignmentsType, Task, TaskStatusUpdate, assignment,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::exec::{Dependencies, Executor};
use crate::network::NetworkAttacher;
use crate::taskdb::{TaskDb, TaskDbError};
pub use log_sources::LogSource;
use log_sources::LogSources;
use runner::{Assigned, Runner, RunnerContext};

/// Task statuses the worker reports, oldest first.
pub type StatusReceiver = mpsc::UnboundedReceiver<TaskStatusUpdate>;

struct Entry {
    assigned: watch::Sender<Assigned>,
    local: Arc<Mutex<Task>>,
    handle: JoinHandle<()>,
}

struct State {
    tasks: HashMap<String, Entry>,
}

/// The task manager. Dropping it (or [`Worker::shutdown`]) stops the
/// runners; the processes of running tasks are stopped with them (their
/// controllers are dropped).
pub struct Worker {
    ctx: RunnerContext,
    deps: watch::Sender<Dependencies>,
    state: Mutex<State>,
    network: std::sync::OnceLock<Arc<NetworkAttacher>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("executor", &self.ctx.executor.name())
            .field("tasks", &self.state.lock().tasks.len())
            .finish()
    }
}

/// The later of two tasks' observed states: the manager's copy may be
/// behind the agent's, or (after the agent lost its database) ahead.
fn merge_status(local: &mut Task, from_manager: &Task) {
    if from_manager.state() > local.state() {
        local.status = from_manager.status.clone();
    }
}

impl Worker {
    /// Opens the task database at `db_path` and resumes the tasks stored
    /// there. Returns the worker and the receiver of its status reports.
    pub fn open(
        db_path: &Path,
        executor: Arc<dyn Executor>,
    ) -> Result<(Worker, StatusReceiver), TaskDbError> {
        let db = TaskDb::open(db_path)?;
        let stored = db.all()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            ctx: RunnerContext {
                executor,
                db,
                reports: tx,
                node_id: Arc::new(Mutex::new(String::new())),
                log_sources: LogSources::default(),
            },
            deps: watch::channel(Dependencies::default()).0,
            state: Mutex::new(State {
                tasks: HashMap::new(),
            }),
            network: std::sync::OnceLock::new(),
        };
        {
            let mut state = worker.state.lock();
            for task in stored {
                // Resumed tasks wait for the manager's word (the first
                // assignments) before anything is done or reported.
                let entry = worker.spawn(task.clone(), task, true);
                if let Some(e) = entry {
                    state.tasks.insert(e.0, e.1);
                }
            }
        }
        Ok((worker, rx))
    }

    /// Sets the node id put in `applied_by` of reported statuses.
    pub fn set_node_id(&self, node_id: &str) {
        *self.ctx.node_id.lock() = node_id.to_string();
    }

    fn spawn(&self, local: Task, assigned: Task, resumed: bool) -> Option<(String, Entry)> {
        let id = local.id.clone();
        if id.is_empty() {
            return None;
        }
        let (atx, arx) = watch::channel(Assigned {
            task: assigned,
            removed: false,
        });
        let local = Arc::new(Mutex::new(local));
        let runner = Runner::new(
            self.ctx.clone(),
            arx,
            self.deps.subscribe(),
            local.clone(),
            resumed,
        );
        let handle = tokio::spawn(runner.run());
        Some((
            id,
            Entry {
                assigned: atx,
                local,
                handle,
            },
        ))
    }

    /// Hands the network views of later assignments to `attacher` (once;
    /// later calls are ignored).
    pub fn set_networking(&self, attacher: Arc<NetworkAttacher>) {
        let _ = self.network.set(attacher);
    }

    /// Applies one message of the assignments stream.
    pub fn apply(&self, msg: &AssignmentsMessage) {
        if let Some(n) = self.network.get() {
            n.apply(msg);
        }
        let complete = msg.r#type() == AssignmentsType::Complete;
        // Secrets and configs first: the tasks of the same message use them.
        self.deps.send_modify(|deps| {
            if complete {
                deps.secrets.clear();
                deps.configs.clear();
            }
            for change in &msg.changes {
                let remove = change.action() == AssignmentAction::Remove;
                match change.assignment.as_ref().and_then(|a| a.item.as_ref()) {
                    Some(assignment::Item::Secret(s)) if remove => {
                        deps.secrets.remove(&s.id);
                    }
                    Some(assignment::Item::Secret(s)) => {
                        deps.secrets.insert(s.id.clone(), s.clone());
                    }
                    Some(assignment::Item::Config(c)) if remove => {
                        deps.configs.remove(&c.id);
                    }
                    Some(assignment::Item::Config(c)) => {
                        deps.configs.insert(c.id.clone(), c.clone());
                    }
                    _ => {}
                }
            }
        });
        let mut state = self.state.lock();
        state.tasks.retain(|_, e| !e.handle.is_finished());
        let mut seen = HashSet::new();
        for change in &msg.changes {
            let Some(assignment::Item::Task(task)) =
                change.assignment.as_ref().and_then(|a| a.item.as_ref())
            else {
                continue;
            };
            if change.action() == AssignmentAction::Remove {
                if let Some(e) = state.tasks.get(&task.id) {
                    e.assigned.send_modify(|a| a.removed = true);
                }
                continue;
            }
            seen.insert(task.id.clone());
            match state.tasks.get(&task.id) {
                Some(e) => {
                    let resend = {
                        let mut local = e.local.lock();
                        merge_status(&mut local, task);
                        // After a reconnect the manager may have missed
                        // reports: send the latest again.
                        (complete && local.state() > task.state()).then(|| TaskStatusUpdate {
                            task_id: local.id.clone(),
                            status: local.status.clone(),
                        })
                    };
                    if let Some(update) = resend {
                        let _ = self.ctx.reports.send(update);
                    }
                    e.assigned.send_replace(Assigned {
                        task: task.clone(),
                        removed: false,
                    });
                }
                None => {
                    if let Some((id, e)) = self.spawn(task.clone(), task.clone(), false) {
                        state.tasks.insert(id, e);
                    }
                }
            }
        }
        if complete {
            for (id, e) in &state.tasks {
                if !seen.contains(id) {
                    e.assigned.send_modify(|a| a.removed = true);
                }
            }
        }
    }

    /// The agent's view of a task (status = last observed), if it holds it.
    pub fn task(&self, id: &str) -> Option<Task> {
        self.state
            .lock()
            .tasks
            .get(id)
            .filter(|e| !e.handle.is_finished())
            .map(|e| e.local.lock().clone())
    }

    /// The agent's view of every task it holds.
    pub fn tasks(&self) -> Vec<Task> {
        self.state
            .lock()
            .tasks
            .values()
            .filter(|e| !e.handle.is_finished())
            .map(|e| e.local.lock().clone())
            .collect()
    }

    /// The output of every task the worker holds whose controller has
    /// been made (from the time it is prepared until it is removed), for
    /// log publishing. Executors that keep no output have none.
    pub fn log_sources(&self) -> Vec<LogSource> {
        self.ctx.log_sources.all()
    }

    /// Changes whenever [`Worker::log_sources`] does (a task's controller
    /// was made, or the task was removed).
    pub fn watch_log_sources(&self) -> watch::Receiver<u64> {
        self.ctx.log_sources.watch()
    }

    /// Stops every runner. Tasks stay recorded in the database; running
    /// processes go with their controllers.
    pub async fn shutdown(&self) {
        let handles: Vec<JoinHandle<()>> = {
            let mut state = self.state.lock();
            state.tasks.drain().map(|(_, e)| e.handle).collect()
        };
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let _ = h.await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        for e in self.state.lock().tasks.values() {
            e.handle.abort();
        }
    }
}
