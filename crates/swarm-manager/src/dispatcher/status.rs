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

async fn flush(store: &Store, batch: &mut Vec<Report>) {
    if batch.is_empty() {
        return;
    }
    let reports = std::mem::take(batch);
    let result = store
        .batch(|b| {
            for r in &reports {
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
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, reports = reports.len(), "writing task status reports failed");
    }
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
}
