//! Task status reports from agents, written to the store in batches.

use std::time::Duration;

use swarm_api::v1::{Task, TaskState, TaskStatus};
use swarm_store::{Store, StoreError};
use tokio::sync::mpsc;

/// One report: a node says a task reached a status.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) node: String,
    pub(crate) task_id: String,
    pub(crate) status: TaskStatus,
}

/// Whether a report may be written over the stored status: only for a task
/// assigned to that node, and only moving the state forward (or staying,
/// with something new to say).
pub(crate) fn accept(task: &Task, report: &Report) -> bool {
    if task.node_id != report.node {
        return false;
    }
    let (current, next) = (task.state(), report.status.state());
    let known = TaskState::from_raw(report.status.state).is_some();
    if !known || next < current {
        return false;
    }
    next > current
        || task
            .status
            .as_ref()
            .is_none_or(|s| s.message != report.status.message || s.err != report.status.err)
}

/// Collects reports and writes them every `interval` or `limit` reports.
pub(crate) async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Report>,
    interval: Duration,
    limit: usize,
) {
    let mut batch: Vec<Report> = Vec::new();
    loop {
        let deadline = tokio::time::sleep(interval);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => {
                        batch.push(r);
                        if batch.len() >= limit {
                            break;
                        }
                    }
                    None => {
                        flush(&store, &mut batch).await;
                        return;
                    }
                },
                _ = &mut deadline => break,
            }
        }
        flush(&store, &mut batch).await;
    }
}

/// Attempts at writing one batch before its reports are given up.
const WRITE_ATTEMPTS: u32 = 5;
/// Wait before the first retry; doubled each time.
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// Writes the batch, retrying a failed write (a proposal that timed out,
/// say) a few times. Reports are given up only when this manager is no
/// longer the leader (agents open a session with the new leader and, on
/// its full assignment set, send again every status it lacks) or after
/// the last attempt.
async fn flush(store: &Store, batch: &mut Vec<Report>) {
    if batch.is_empty() {
        return;
    }
    let reports = std::mem::take(batch);
    let mut delay = FIRST_RETRY;
    for attempt in 1..=WRITE_ATTEMPTS {
        let Err(e) = write(store, &reports).await else {
            return;
        };
        if crate::error::not_leader(&e).is_some() || attempt == WRITE_ATTEMPTS {
            tracing::warn!(error = %e, reports = reports.len(), attempt, "task status reports not written");
            return;
        }
        tracing::debug!(error = %e, attempt, "writing task status reports failed; retrying");
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

/// One attempt at writing the reports (each in its own transaction of
/// the batch).
async fn write(store: &Store, reports: &[Report]) -> Result<(), StoreError> {
    store
        .batch(|b| {
            for r in reports {
                // A report for a task that vanished, or moving backwards,
                // is dropped; one refused write never blocks the others.
                let _ = b.update(|tx| {
                    let Some(task) = tx.get::<Task>(&r.task_id) else {
                        return Ok(());
                    };
                    if !accept(&task, r) {
                        return Ok(());
                    }
                    let mut t = (*task).clone();
                    let mut status = r.status.clone();
                    // Manager time: restart delays and update monitors
                    // compare these times, whatever the agents' clocks say.
                    status.timestamp = Some(swarm_api::v1::Timestamp::now());
                    t.status = Some(status);
                    tx.update(t).map(drop)
                });
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(node: &str, state: TaskState) -> Task {
        Task {
            node_id: node.into(),
            status: Some(TaskStatus {
                state: state.into(),
                message: "m".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn report(node: &str, state: i32, message: &str) -> Report {
        Report {
            node: node.into(),
            task_id: "t".into(),
            status: TaskStatus {
                state,
                message: message.into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn only_forward_moves_from_the_assigned_node() {
        let running = i32::from(TaskState::Running);
        let table = [
            (
                task("n1", TaskState::Assigned),
                report("n1", running, "m"),
                true,
            ),
            (
                task("n1", TaskState::Running),
                report("n1", i32::from(TaskState::Starting), "m"),
                false,
            ),
            (
                task("n1", TaskState::Running),
                report("n1", running, "m"),
                false,
            ),
            (
                task("n1", TaskState::Running),
                report("n1", running, "healthy"),
                true,
            ),
            (
                task("n1", TaskState::Assigned),
                report("n2", running, "m"),
                false,
            ),
            (
                task("n1", TaskState::Assigned),
                report("n1", 9999, "m"),
                false,
            ),
            (
                task("n1", TaskState::Running),
                report("n1", i32::from(TaskState::Failed), "m"),
                true,
            ),
        ];
        for (t, r, want) in table {
            assert_eq!(accept(&t, &r), want, "{:?} -> {:?}", t.status, r.status);
        }
    }

    /// Applies proposals at once after failing the first `fail` of them
    /// (or every one, as a follower would, with `NotLeader`).
    struct FlakyLog {
        store: Store,
        next: std::sync::atomic::AtomicU64,
        fail: u64,
        not_leader: bool,
    }

    impl swarm_store::Proposer for FlakyLog {
        fn propose(
            &self,
            batch: swarm_api::v1::StoreActionBatch,
        ) -> swarm_store::BoxFuture<Result<u64, swarm_store::ProposeError>> {
            use std::sync::atomic::Ordering;
            let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
            let outcome = if self.not_leader {
                Err(swarm_store::ProposeError::NotLeader(None))
            } else if n <= self.fail {
                Err(swarm_store::ProposeError::Failed(
                    "proposal timed out".into(),
                ))
            } else {
                self.store
                    .apply(n, &batch)
                    .map(|()| n)
                    .map_err(|e| swarm_store::ProposeError::Rejected(Box::new(e)))
            };
            Box::pin(async move { outcome })
        }
    }

    /// A store holding task `t` assigned to `n1`, behind a flaky log.
    async fn flaky_store(
        fail: u64,
        not_leader: bool,
    ) -> (Store, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let store = Store::new();
        store
            .update(|tx| {
                let mut t = task("n1", TaskState::Assigned);
                t.id = "t".into();
                tx.create(t).map(drop)
            })
            .await
            .unwrap();
        let log = FlakyLog {
            store: store.clone(),
            next: std::sync::atomic::AtomicU64::new(0),
            fail,
            not_leader,
        };
        store.set_proposer(Some(Box::new(log)));
        (store, std::sync::Arc::default())
    }

    fn state_of(store: &Store) -> TaskState {
        store.view().get::<Task>("t").unwrap().state()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_is_retried() {
        let (store, _) = flaky_store(2, false).await;
        let mut batch = vec![report("n1", i32::from(TaskState::Running), "up")];
        flush(&store, &mut batch).await;
        assert!(batch.is_empty());
        assert_eq!(state_of(&store), TaskState::Running);
    }

    #[tokio::test(start_paused = true)]
    async fn reports_are_given_up_after_the_last_attempt_or_on_lost_leadership() {
        let (store, _) = flaky_store(u64::from(WRITE_ATTEMPTS), false).await;
        let mut batch = vec![report("n1", i32::from(TaskState::Running), "up")];
        flush(&store, &mut batch).await;
        assert_eq!(state_of(&store), TaskState::Assigned);
        let (store, _) = flaky_store(0, true).await;
        let mut batch = vec![report("n1", i32::from(TaskState::Running), "up")];
        flush(&store, &mut batch).await;
        assert_eq!(state_of(&store), TaskState::Assigned);
    }
}
