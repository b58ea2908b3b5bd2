//! Convergence assessment and progress lines.

#![allow(clippy::unwrap_used, reason = "tests")]

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;
use swarm_examples::ctl::progress::{Reporter, Verdict, assess};

fn web(replicas: u64, spec_version: u64) -> Service {
    Service {
        id: "svc".into(),
        spec_version,
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(slot: u64, version: u64, state: TaskState, err: &str) -> Task {
    let mut t = Task {
        id: format!("t{slot}v{version}"),
        service_id: "svc".into(),
        slot,
        spec_version: version,
        status: Some(TaskStatus {
            err: err.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    t.status.as_mut().unwrap().set_state(state);
    t.set_desired_state(TaskState::Running);
    t
}

#[test]
fn replicated_service_converges_slot_by_slot() {
    let s = web(2, 1);
    let mut reporter = Reporter::new();
    let p = assess(&s, &[task(1, 1, TaskState::Running, "")], false);
    assert_eq!(p.verdict, Verdict::Converging);
    assert_eq!(
        reporter.lines(&p),
        vec![
            "overall progress: 1 out of 2 tasks",
            "1/2: running",
            "2/2: new"
        ]
    );
    let p = assess(
        &s,
        &[
            task(1, 1, TaskState::Running, ""),
            task(2, 1, TaskState::Preparing, ""),
        ],
        false,
    );
    assert_eq!(reporter.lines(&p), vec!["2/2: preparing"]);
    let p = assess(
        &s,
        &[
            task(1, 1, TaskState::Running, ""),
            task(2, 1, TaskState::Running, ""),
        ],
        false,
    );
    assert_eq!(p.verdict, Verdict::Converged);
    assert_eq!(
        reporter.lines(&p),
        vec![
            "overall progress: 2 out of 2 tasks",
            "2/2: running",
            "verify: Service converged"
        ]
    );
}

#[test]
fn old_spec_tasks_do_not_count_and_failures_are_reported() {
    let s = web(1, 2);
    let tasks = [
        task(1, 1, TaskState::Running, ""),
        task(1, 2, TaskState::Failed, "exec: no such file"),
    ];
    let p = assess(&s, &tasks, false);
    assert_eq!(p.verdict, Verdict::Converging);
    assert_eq!(p.done, 0);
    assert_eq!(p.slots["1/1"], "failed (exec: no such file)");
    assert_eq!(p.errors, vec!["task t1v2: exec: no such file"]);
}

#[test]
fn a_paused_update_stops_following() {
    let mut s = web(1, 2);
    s.update_status = Some(UpdateStatus {
        state: UpdateState::Paused.into(),
        message: "update paused due to failure".into(),
        ..Default::default()
    });
    let p = assess(&s, &[], false);
    assert_eq!(
        p.verdict,
        Verdict::Stopped("update paused: update paused due to failure".into())
    );
    // An automatic rollback is a failure of the update; a requested one is
    // the goal.
    s.update_status.as_mut().unwrap().state = UpdateState::RollbackCompleted.into();
    assert!(matches!(
        assess(&s, &[], false).verdict,
        Verdict::Stopped(_)
    ));
    let p = assess(&s, &[task(1, 2, TaskState::Running, "")], true);
    assert_eq!(p.verdict, Verdict::Converged);
}

#[test]
fn replicated_job_counts_completions() {
    let mut s = web(0, 1);
    s.spec.as_mut().unwrap().mode = Some(Mode::ReplicatedJob(ReplicatedJob {
        max_concurrent: 1,
        total_completions: 2,
    }));
    let p = assess(&s, &[task(1, 1, TaskState::Complete, "")], false);
    assert_eq!((p.done, p.total), (1, 2));
    let p = assess(
        &s,
        &[
            task(1, 1, TaskState::Complete, ""),
            task(2, 1, TaskState::Complete, ""),
        ],
        false,
    );
    assert_eq!(p.verdict, Verdict::Converged);
}
