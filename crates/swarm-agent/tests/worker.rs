//! The task manager with the process executor: the state machine only
//! moves forward, desired states are honoured, and a restart from the
//! local database neither loses nor duplicates tasks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use common::*;
use swarm_agent::{ProcessExecutor, StatusReceiver, Worker};
use swarm_api::v1::*;

/// Collects a worker's reports and checks each task's only move forward.
struct Reports {
    rx: StatusReceiver,
    seen: HashMap<String, Vec<TaskStatus>>,
}

impl Reports {
    fn new(rx: StatusReceiver) -> Self {
        Reports {
            rx,
            seen: HashMap::new(),
        }
    }

    fn drain(&mut self) {
        while let Ok(u) = self.rx.try_recv() {
            let status = u.status.unwrap();
            let list = self.seen.entry(u.task_id.clone()).or_default();
            if let Some(last) = list.last() {
                assert!(
                    status.state() >= last.state(),
                    "task {} went back from {:?} to {:?}",
                    u.task_id,
                    last.state(),
                    status.state()
                );
            }
            list.push(status);
        }
    }

    fn states(&mut self, id: &str) -> Vec<TaskState> {
        self.drain();
        let mut s: Vec<TaskState> = self
            .seen
            .get(id)
            .map(|l| l.iter().map(TaskStatus::state).collect())
            .unwrap_or_default();
        s.dedup();
        s
    }

    async fn until(&mut self, id: &str, state: TaskState) -> TaskStatus {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.drain();
            if let Some(s) = self
                .seen
                .get(id)
                .and_then(|l| l.iter().find(|s| s.state() == state))
            {
                return s.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} never reached {state:?}; saw {:?}",
                self.states(id)
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

fn task(script: &str, desired: TaskState) -> Task {
    Task {
        id: swarm_api::id::new_id(),
        spec: Some(TaskSpec {
            container: Some(ContainerSpec {
                command: vec!["/bin/sh".into(), "-c".into(), script.into()],
                stop_grace_period: Some(Duration::from_secs(5)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        desired_state: desired.into(),
        status: Some(TaskStatus {
            state: TaskState::Assigned.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn change(t: &Task, action: AssignmentAction) -> AssignmentChange {
    AssignmentChange {
        assignment: Some(Assignment {
            item: Some(assignment::Item::Task(t.clone())),
        }),
        action: action.into(),
    }
}

fn complete(tasks: &[&Task]) -> AssignmentsMessage {
    AssignmentsMessage {
        r#type: AssignmentsType::Complete.into(),
        changes: tasks
            .iter()
            .map(|t| change(t, AssignmentAction::Update))
            .collect(),
        ..Default::default()
    }
}

fn incremental(changes: Vec<AssignmentChange>) -> AssignmentsMessage {
    AssignmentsMessage {
        r#type: AssignmentsType::Incremental.into(),
        changes,
        ..Default::default()
    }
}

fn open(dir: &Path) -> (Worker, Reports) {
    let exec = ProcessExecutor::new(dir.join("tasks"));
    let (w, rx) = Worker::open(&dir.join("tasks.redb"), Arc::new(exec)).unwrap();
    w.set_node_id("node1");
    (w, Reports::new(rx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_move_forward_to_complete_or_failed() {
    init_logs();
    let dir = Dir::new("forward");
    let (w, mut r) = open(&dir.0);
    let ok = task("exit 0", TaskState::Running);
    let bad = task("echo oops >&2; exit 3", TaskState::Running);
    w.apply(&complete(&[&ok, &bad]));
    let done = r.until(&ok.id, TaskState::Complete).await;
    assert_eq!(done.applied_by, "node1");
    assert!(done.timestamp.is_some());
    assert_eq!(
        r.states(&ok.id),
        [
            TaskState::Accepted,
            TaskState::Preparing,
            TaskState::Ready,
            TaskState::Starting,
            TaskState::Running,
            TaskState::Complete
        ]
    );
    let failed = r.until(&bad.id, TaskState::Failed).await;
    assert!(failed.err.contains("code 3"), "{failed:?}");
    assert_eq!(failed.container_status.unwrap().exit_code, 3);
    // A later assignment saying the task should run does not restart it.
    w.apply(&incremental(vec![change(&ok, AssignmentAction::Update)]));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(r.states(&ok.id).last(), Some(&TaskState::Complete));
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_ready_holds_then_running_starts_then_shutdown_stops() {
    init_logs();
    let dir = Dir::new("desired");
    let (w, mut r) = open(&dir.0);
    // A process that would exit 42 on TERM: SHUTDOWN is reported anyway,
    // since the stop was asked for.
    let mut t = task(
        "trap 'exit 42' TERM; while :; do sleep 0.05; done",
        TaskState::Ready,
    );
    w.apply(&complete(&[&t]));
    r.until(&t.id, TaskState::Ready).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        r.states(&t.id).last(),
        Some(&TaskState::Ready),
        "held at READY"
    );

    t.desired_state = TaskState::Running.into();
    w.apply(&incremental(vec![change(&t, AssignmentAction::Update)]));
    let running = r.until(&t.id, TaskState::Running).await;
    let pid = running.container_status.unwrap().pid;
    assert!(pid > 0);

    t.desired_state = TaskState::Shutdown.into();
    w.apply(&incremental(vec![change(&t, AssignmentAction::Update)]));
    let stopped = r.until(&t.id, TaskState::Shutdown).await;
    assert!(stopped.err.is_empty(), "{stopped:?}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process gone");
    assert_eq!(r.states(&t.id).last(), Some(&TaskState::Shutdown));
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unassigned_task_is_stopped_and_cleaned_up() {
    init_logs();
    let dir = Dir::new("removed");
    let (w, mut r) = open(&dir.0);
    let a = task("exec sleep 600", TaskState::Running);
    let b = task("exec sleep 600", TaskState::Running);
    w.apply(&complete(&[&a, &b]));
    let pid_a = r
        .until(&a.id, TaskState::Running)
        .await
        .container_status
        .unwrap()
        .pid;
    let pid_b = r
        .until(&b.id, TaskState::Running)
        .await
        .container_status
        .unwrap()
        .pid;
    // `a` removed explicitly, `b` by omission from a complete set.
    w.apply(&incremental(vec![change(&a, AssignmentAction::Remove)]));
    w.apply(&complete(&[]));
    for (id, pid) in [(&a.id, pid_a), (&b.id, pid_b)] {
        eventually("task forgotten and cleaned", || async {
            (w.task(id).is_none()
                && !dir.0.join("tasks").join(id).exists()
                && !Path::new(&format!("/proc/{pid}")).exists())
            .then_some(())
        })
        .await;
    }
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_neither_loses_nor_duplicates_tasks() {
    init_logs();
    let dir = Dir::new("restart");
    let marker = dir.0.join("starts");
    let script = format!("echo started >> {}; exec sleep 600", marker.display());
    let running = task(&script, TaskState::Running);
    let stopping = task(&script, TaskState::Running);
    let held = task(&script, TaskState::Ready);
    let (pid_running, pid_stopping) = {
        let (w, mut r) = open(&dir.0);
        w.apply(&complete(&[&running, &stopping, &held]));
        let p1 = r
            .until(&running.id, TaskState::Running)
            .await
            .container_status
            .unwrap()
            .pid;
        let p2 = r
            .until(&stopping.id, TaskState::Running)
            .await
            .container_status
            .unwrap()
            .pid;
        r.until(&held.id, TaskState::Ready).await;
        w.shutdown().await;
        (p1, p2)
    };
    // The agent went away with its processes.
    for pid in [pid_running, pid_stopping] {
        eventually("process gone with the agent", || async {
            (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        })
        .await;
    }
    // Restarted on the same database, before any assignment arrives.
    let (w, mut r) = open(&dir.0);
    assert_eq!(w.tasks().len(), 3, "tasks resumed from the database");
    // Nothing is reported before the manager's assignments arrive.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    r.drain();
    assert!(r.seen.is_empty(), "{:?}", r.seen);
    // The manager meanwhile wants `stopping` stopped.
    let mut stop = stopping.clone();
    stop.desired_state = TaskState::Shutdown.into();
    w.apply(&complete(&[&running, &stop, &held]));
    let failed = r.until(&running.id, TaskState::Failed).await;
    assert_eq!(failed.message, "agent restarted");
    assert!(failed.err.contains("gone"), "{failed:?}");
    r.until(&stopping.id, TaskState::Shutdown).await;
    // (RUNNING first: the manager's copy said ASSIGNED, so the agent
    // re-sent what it had last observed.)
    assert_eq!(
        r.states(&stopping.id),
        [TaskState::Running, TaskState::Shutdown]
    );
    // The held task is prepared again but not started; nothing is started twice.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(r.states(&held.id).iter().all(|s| *s <= TaskState::Ready));
    let starts = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(starts.lines().count(), 2, "{starts}");
    w.shutdown().await;
}

fn with_health(mut t: Task, test: &[&str]) -> Task {
    let c = t.spec.as_mut().unwrap().container.as_mut().unwrap();
    c.healthcheck = Some(HealthConfig {
        test: test.iter().map(|s| s.to_string()).collect(),
        interval: Some(Duration::from_millis(100)),
        timeout: Some(Duration::from_secs(2)),
        retries: 2,
        start_period: None,
    });
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_task_fails_and_a_healthy_one_completes() {
    init_logs();
    let dir = Dir::new("health");
    let (w, mut r) = open(&dir.0);
    let sick = with_health(
        task("exec sleep 600", TaskState::Running),
        &["CMD-SHELL", "exit 1"],
    );
    let fine = with_health(
        task("sleep 0.5; exit 0", TaskState::Running),
        &["CMD", "true"],
    );
    w.apply(&complete(&[&sick, &fine]));
    let pid = r
        .until(&sick.id, TaskState::Running)
        .await
        .container_status
        .unwrap()
        .pid;
    let failed = r.until(&sick.id, TaskState::Failed).await;
    assert_eq!(failed.message, "unhealthy");
    assert!(
        failed.err.contains("2 consecutive failed health checks"),
        "{failed:?}"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the unhealthy process is stopped"
    );
    r.until(&fine.id, TaskState::Complete).await;
    w.shutdown().await;
}
