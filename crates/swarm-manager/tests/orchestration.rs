//! Services driven end to end through one manager and fake agents over
//! real mutual TLS: the orchestrators, allocator, scheduler and dispatcher
//! together.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use swarm_api::v1::*;
use swarm_store::By;

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
                delay: Some(Duration::from_millis(100)),
                max_attempts: 0,
                window: None,
            }),
            ..Default::default()
        }),
        mode: Some(mode),
        update: Some(UpdateConfig {
            parallelism: 2,
            delay: Some(Duration::from_millis(0)),
            failure_action: FailureAction::Rollback.into(),
            monitor: Some(Duration::from_millis(300)),
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst.into(),
        }),
        rollback: Some(UpdateConfig {
            parallelism: 0,
            monitor: Some(Duration::from_millis(100)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Running tasks of a service wanted running, by node.
fn running(m: &swarm_manager::Manager, svc: &str) -> BTreeMap<String, Vec<Task>> {
    let mut out: BTreeMap<String, Vec<Task>> = BTreeMap::new();
    for t in m.store().view().find::<Task>(By::ServiceId(svc)).unwrap() {
        if t.state() == TaskState::Running && t.desired_state() == TaskState::Running {
            out.entry(t.node_id.clone()).or_default().push((*t).clone());
        }
    }
    out
}

fn count(m: &BTreeMap<String, Vec<Task>>) -> usize {
    m.values().map(Vec::len).sum()
}

async fn get_service(
    c: &mut swarm_api::v1::control_client::ControlClient<tonic::transport::Channel>,
    id: &str,
) -> Service {
    c.get_service(GetServiceRequest {
        service_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .service
    .unwrap()
}

async fn set_node(
    c: &mut swarm_api::v1::control_client::ControlClient<tonic::transport::Channel>,
    id: &str,
    availability: NodeAvailability,
) {
    let n = c
        .get_node(GetNodeRequest { node_id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    let mut spec = n.spec.clone().unwrap();
    spec.availability = availability.into();
    c.update_node(UpdateNodeRequest {
        node_id: id.into(),
        node_version: n.meta.unwrap().version,
        spec: Some(spec),
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_converge_scale_follow_node_loss_drain_and_roll_back_bad_updates() {
    init_logs();
    let dir = Dir::new("orchestration");
    // The manager's own node runs no agent here: keep tasks off it.
    let m = builder(&dir.0)
        .availability(NodeAvailability::Drain)
        .start()
        .await
        .unwrap();
    let token = m.join_tokens().unwrap().worker;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(FakeAgent::join(m.addr(), &token).await);
    }
    let mut c = control(&m).await;
    let svc = c
        .create_service(CreateServiceRequest {
            spec: Some(spec(
                "web",
                "v1",
                service_spec::Mode::Replicated(ReplicatedService { replicas: 6 }),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();

    // Six replicas run, spread over the three workers.
    eventually("6 replicas running on 3 nodes", || async {
        let r = running(&m, &svc.id);
        (count(&r) == 6 && r.len() == 3 && !r.contains_key(m.node_id())).then_some(())
    })
    .await;

    // Scale down to 3.
    let current = get_service(&mut c, &svc.id).await;
    let mut s3 = current.spec.clone().unwrap();
    s3.mode = Some(service_spec::Mode::Replicated(ReplicatedService {
        replicas: 3,
    }));
    c.update_service(UpdateServiceRequest {
        service_id: svc.id.clone(),
        service_version: current.meta.unwrap().version,
        spec: Some(s3),
        rollback: false,
    })
    .await
    .unwrap();
    eventually("3 replicas", || async {
        let tasks = m
            .store()
            .view()
            .find::<Task>(By::ServiceId(&svc.id))
            .unwrap();
        let wanted = tasks
            .iter()
            .filter(|t| t.desired_state() <= TaskState::Running)
            .count();
        (count(&running(&m, &svc.id)) == 3 && wanted == 3).then_some(())
    })
    .await;

    // A worker dies: its tasks come back on the others.
    let dead = agents.remove(0);
    dead.kill();
    eventually("tasks rescheduled off the dead node", || async {
        let r = running(&m, &svc.id);
        (count(&r) == 3 && !r.contains_key(&dead.node_id)).then_some(())
    })
    .await;

    // Drain a live worker: everything ends up on the last one.
    set_node(&mut c, &agents[0].node_id, NodeAvailability::Drain).await;
    eventually("tasks moved off the drained node", || async {
        let r = running(&m, &svc.id);
        (count(&r) == 3 && r.len() == 1 && r.contains_key(&agents[1].node_id)).then_some(())
    })
    .await;
    set_node(&mut c, &agents[0].node_id, NodeAvailability::Active).await;

    // A bad update (the new image fails) rolls back on its own.
    let current = get_service(&mut c, &svc.id).await;
    let mut bad = current.spec.clone().unwrap();
    bad.task.as_mut().unwrap().container.as_mut().unwrap().image = "fail".into();
    c.update_service(UpdateServiceRequest {
        service_id: svc.id.clone(),
        service_version: current.meta.unwrap().version,
        spec: Some(bad),
        rollback: false,
    })
    .await
    .unwrap();
    let rolled = eventually("the update rolled back", || async {
        let s = m.store().view().get::<Service>(&svc.id)?;
        (s.update_status.as_ref()?.state() == UpdateState::RollbackCompleted).then_some(s)
    })
    .await;
    let image = rolled
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.container.as_ref())
        .map(|c| c.image.clone());
    assert_eq!(image.as_deref(), Some("v1"), "the spec rolled back");
    eventually("3 replicas of v1 running again", || async {
        let r = running(&m, &svc.id);
        let v1 = r
            .values()
            .flatten()
            .all(|t| t.spec.as_ref().unwrap().container.as_ref().unwrap().image == "v1");
        (count(&r) == 3 && v1).then_some(())
    })
    .await;

    // A global service: one task per active worker, following availability.
    let global = c
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
    eventually("one global task per live worker", || async {
        let r = running(&m, &global.id);
        (r.len() == 2 && count(&r) == 2 && !r.contains_key(&dead.node_id)).then_some(())
    })
    .await;

    // Removing the service removes its tasks.
    c.remove_service(RemoveServiceRequest {
        service_id: global.id.clone(),
    })
    .await
    .unwrap();
    eventually("global tasks reaped", || async {
        let left = m
            .store()
            .view()
            .find::<Task>(By::ServiceId(&global.id))
            .ok()?;
        left.is_empty().then_some(())
    })
    .await;
}
