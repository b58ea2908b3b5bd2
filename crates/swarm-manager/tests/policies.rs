//! Service policies end to end, through one manager and fake agents over
//! real mutual TLS: the restart policy's delay and max attempts, and a
//! global service following nodes as they join.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use common::*;
use swarm_api::v1::*;
use swarm_manager::Manager;
use swarm_manager::orchestrator::RESTART_HISTORY_LABEL;
use swarm_store::By;

const DELAY: std::time::Duration = std::time::Duration::from_millis(400);
const MAX_ATTEMPTS: u64 = 2;

fn spec(name: &str, image: &str, mode: service_spec::Mode) -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations {
            name: name.into(),
            ..Default::default()
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: image.into(),
                command: vec!["sleep".into(), "1000".into()],
                ..Default::default()
            }),
            restart: Some(RestartPolicy {
                condition: RestartCondition::Any.into(),
                delay: Some(DELAY.into()),
                max_attempts: MAX_ATTEMPTS,
                window: None,
            }),
            ..Default::default()
        }),
        mode: Some(mode),
        ..Default::default()
    }
}

async fn drained_manager(tag: &str) -> (Dir, Manager) {
    let dir = Dir::new(tag);
    // The manager's own node runs no agent here: keep tasks off it.
    let m = builder(&dir.0)
        .availability(NodeAvailability::Drain)
        .start()
        .await
        .unwrap();
    (dir, m)
}

fn created(t: &Task) -> SystemTime {
    t.meta
        .as_ref()
        .unwrap()
        .created_at
        .as_ref()
        .unwrap()
        .to_system_time()
}

fn ended(t: &Task) -> SystemTime {
    t.status
        .as_ref()
        .unwrap()
        .timestamp
        .as_ref()
        .unwrap()
        .to_system_time()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_task_restarts_after_the_delay_up_to_max_attempts() {
    init_logs();
    let (_dir, m) = drained_manager("restart").await;
    let token = m.join_tokens().unwrap().worker;
    let agent = FakeAgent::join(m.addr(), &token).await;
    let mut c = control(&m).await;
    let svc = c
        .create_service(CreateServiceRequest {
            spec: Some(spec(
                "crash",
                "fail",
                service_spec::Mode::Replicated(ReplicatedService { replicas: 1 }),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let attempts = usize::try_from(MAX_ATTEMPTS).unwrap() + 1;
    let failed = || {
        let mut tasks: Vec<Arc<Task>> = m
            .store()
            .view()
            .find::<Task>(By::ServiceId(&svc.id))
            .unwrap();
        tasks.sort_by_key(|t| created(t));
        tasks
    };
    eventually("the first run and its restarts failed", || async {
        let tasks = failed();
        (tasks.len() == attempts && tasks.iter().all(|t| t.state() == TaskState::Failed))
            .then_some(())
    })
    .await;
    // No restart is due after the last: one would have come within the
    // delay. Only waiting past that moment can show it does not.
    tokio::time::sleep(DELAY * 3).await;
    let tasks = failed();
    assert_eq!(tasks.len(), attempts, "no restart beyond max attempts");
    assert!(
        tasks
            .iter()
            .all(|t| t.slot == 1 && t.node_id == agent.node_id)
    );
    assert!(
        tasks.iter().all(|t| t.state() == TaskState::Failed),
        "{tasks:#?}"
    );
    for pair in tasks.windows(2) {
        let gap = created(&pair[1])
            .duration_since(ended(&pair[0]))
            .unwrap_or_default();
        assert!(
            gap >= DELAY,
            "restarted {gap:?} after the failure, before the {DELAY:?} delay"
        );
    }
    let history = tasks
        .last()
        .unwrap()
        .annotations
        .as_ref()
        .and_then(|a| a.labels.get(RESTART_HISTORY_LABEL))
        .cloned()
        .unwrap_or_default();
    assert_eq!(history.split(',').count(), attempts - 1, "{history}");
    // The slot rests: the last task is still wanted (a later update or
    // a window sliding by may restart it), nothing else is.
    let wanted: Vec<&Arc<Task>> = tasks
        .iter()
        .filter(|t| t.desired_state() == TaskState::Running)
        .collect();
    assert_eq!(wanted.len(), 1);
    assert_eq!(wanted[0].id, tasks.last().unwrap().id);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_global_service_follows_nodes_as_they_join() {
    init_logs();
    let (_dir, m) = drained_manager("globaljoin").await;
    let token = m.join_tokens().unwrap().worker;
    let mut agents = vec![FakeAgent::join(m.addr(), &token).await];
    let mut c = control(&m).await;
    let svc = c
        .create_service(CreateServiceRequest {
            spec: Some(spec(
                "mon",
                "v1",
                service_spec::Mode::Global(GlobalService {}),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let per_node = || {
        let mut out: BTreeMap<String, usize> = BTreeMap::new();
        for t in m
            .store()
            .view()
            .find::<Task>(By::ServiceId(&svc.id))
            .unwrap()
        {
            if t.state() == TaskState::Running && t.desired_state() == TaskState::Running {
                *out.entry(t.node_id.clone()).or_default() += 1;
            }
        }
        out
    };
    let expect = |agents: &[FakeAgent]| -> BTreeMap<String, usize> {
        agents.iter().map(|a| (a.node_id.clone(), 1)).collect()
    };
    eventually("one task on the one worker", || async {
        (per_node() == expect(&agents)).then_some(())
    })
    .await;
    for _ in 0..2 {
        agents.push(FakeAgent::join(m.addr(), &token).await);
        eventually("a task on the worker that joined", || async {
            (per_node() == expect(&agents)).then_some(())
        })
        .await;
    }
    // Nothing on the drained manager, nothing twice.
    let wanted = m
        .store()
        .view()
        .find::<Task>(By::ServiceId(&svc.id))
        .unwrap()
        .iter()
        .filter(|t| t.desired_state() == TaskState::Running)
        .count();
    assert_eq!(wanted, 3);
    m.shutdown().await;
}
