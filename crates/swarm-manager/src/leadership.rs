//! Leader-only work: started when this manager becomes raft leader,
//! stopped when it stops being leader.

use std::sync::Arc;
use std::time::Duration;

use swarm_raft::RaftNode;
use swarm_store::Store;
use tokio::task::JoinHandle;

use crate::dispatcher::Dispatcher;
use crate::logbroker::LogBrokerService;
use crate::scheduler_loop::SchedulerFactory;

/// Starts the leader's components; returns handles to stop them.
pub(crate) type LeaderStart = Arc<dyn Fn() -> Vec<JoinHandle<()>> + Send + Sync>;

/// The components a leader runs.
#[derive(Clone)]
pub(crate) struct LeaderWork {
    pub(crate) store: Store,
    pub(crate) raft: RaftNode,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) logs: LogBrokerService,
    pub(crate) scheduler: SchedulerFactory,
    pub(crate) extra: Option<LeaderStart>,
}

impl LeaderWork {
    fn start(&self) -> Vec<JoinHandle<()>> {
        tracing::info!(
            raft_id = self.raft.id(),
            "became leader: starting the orchestration components"
        );
        self.dispatcher.start_leading();
        self.logs.start_leading();
        let mut tasks = vec![
            tokio::spawn(crate::orchestrator::run(self.store.clone())),
            tokio::spawn(crate::allocator::run(self.store.clone())),
            tokio::spawn(crate::scheduler_loop::run(
                self.store.clone(),
                self.scheduler.clone(),
                self.dispatcher.counters(),
            )),
            tokio::spawn(crate::membership::role_manager(
                self.store.clone(),
                self.raft.clone(),
            )),
        ];
        if let Some(extra) = &self.extra {
            tasks.extend(extra());
        }
        tasks
    }

    fn stop(&self, tasks: &mut Vec<JoinHandle<()>>) {
        tracing::info!(
            raft_id = self.raft.id(),
            "lost leadership: stopping the orchestration components"
        );
        for t in tasks.drain(..) {
            t.abort();
        }
        self.dispatcher.stop_leading();
        self.logs.stop_leading();
    }
}

/// Watches leadership and starts or stops the leader's work.
pub(crate) async fn run(work: LeaderWork) {
    let mut running: Option<Vec<JoinHandle<()>>> = None;
    loop {
        let leading = work.raft.is_leader();
        match (&mut running, leading) {
            // A member may believe it leads from a vote restored at start,
            // before any quorum confirmed it (openraft restores a
            // committed vote). Leader work starts only once a quorum
            // confirmed the leadership and this store has applied
            // everything committed before: never from stale state.
            (None, true) => match work.raft.read_barrier().await {
                Ok(()) if work.raft.is_leader() => running = Some(work.start()),
                Ok(()) => {}
                Err(e) => {
                    tracing::info!(error = %e, "leadership not confirmed yet");
                }
            },
            (Some(tasks), false) => {
                work.stop(tasks);
                running = None;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
