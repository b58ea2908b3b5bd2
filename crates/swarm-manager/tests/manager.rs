//! One manager and fake agents over real mutual TLS: the control API, the
//! CA, the dispatcher, the allocator and the scheduler loop together.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use common::*;
use swarm_api::health::health_check_response::ServingStatus;
use swarm_api::v1::*;
use swarm_pki::JoinToken;
use swarm_store::By;

fn token(m: &swarm_manager::Manager, manager: bool) -> JoinToken {
    let t = m.join_tokens().unwrap();
    if manager { t.manager } else { t.worker }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_api_validates_versions_and_hides_secrets() {
    init_logs();
    let dir = Dir::new("control");
    let m = builder(&dir.0).start().await.unwrap();
    let mut c = control(&m).await;

    // The cluster: tokens shown, keys never.
    let clusters = c
        .list_clusters(ListClustersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .clusters;
    assert_eq!(clusters.len(), 1);
    let root = clusters[0].root_ca.clone().unwrap();
    assert!(
        root.ca_key.is_empty(),
        "the CA key never leaves the managers"
    );
    assert!(root.join_tokens.unwrap().worker.starts_with("SWMTKN-1-"));

    // Networks are allocated by the allocator.
    let net = c
        .create_network(CreateNetworkRequest {
            spec: Some(NetworkSpec {
                annotations: Some(Annotations {
                    name: "backend".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    eventually("network allocation", || async {
        let n = m.store().view().get::<Network>(&net.id)?;
        n.ipam.as_ref().filter(|i| !i.configs.is_empty()).map(drop)
    })
    .await;

    // Secrets: no data on the way out.
    let secret = c
        .create_secret(CreateSecretRequest {
            spec: Some(SecretSpec {
                annotations: Some(Annotations {
                    name: "pw".into(),
                    ..Default::default()
                }),
                data: b"hunter2".to_vec(),
                driver: None,
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .secret
        .unwrap();
    assert!(secret.spec.unwrap().data.is_empty());

    // A service referring to both by name stores their ids.
    let spec = ServiceSpec {
        annotations: Some(Annotations {
            name: "web".into(),
            ..Default::default()
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                command: vec!["sleep".into(), "60".into()],
                secrets: vec![SecretReference {
                    secret_name: "pw".into(),
                    file: Some(FileTarget {
                        name: "pw".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            networks: vec![NetworkAttachmentConfig {
                target: "backend".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedService {
            replicas: 2,
        })),
        ..Default::default()
    };
    let svc = c
        .create_service(CreateServiceRequest {
            spec: Some(spec.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let stored = svc.spec.clone().unwrap();
    assert_eq!(stored.task.as_ref().unwrap().networks[0].target, net.id);
    assert_eq!(
        stored
            .task
            .as_ref()
            .unwrap()
            .container
            .as_ref()
            .unwrap()
            .secrets[0]
            .secret_id,
        secret.id
    );
    // A duplicate name, a bad constraint, a missing network: clear errors.
    let dup = c
        .create_service(CreateServiceRequest {
            spec: Some(spec.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists, "{dup}");
    let mut bad = spec.clone();
    bad.annotations.as_mut().unwrap().name = "bad".into();
    bad.task.as_mut().unwrap().placement = Some(Placement {
        constraints: vec!["node.labels.zone=>a".into()],
        ..Default::default()
    });
    let err = c
        .create_service(CreateServiceRequest { spec: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    let mut nonet = spec.clone();
    nonet.annotations.as_mut().unwrap().name = "nonet".into();
    nonet.task.as_mut().unwrap().networks[0].target = "nope".into();
    let err = c
        .create_service(CreateServiceRequest { spec: Some(nonet) })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("network \"nope\" not found"),
        "{err}"
    );

    // The allocator gives the service its endpoint (a VIP on the network);
    // then updates carry the version they were read at.
    let svc = eventually("service allocation", || async {
        let s = m.store().view().get::<Service>(&svc.id)?;
        s.endpoint
            .as_ref()
            .filter(|e| e.virtual_ips.iter().any(|v| v.network_id == net.id))
            .map(|_| (*s).clone())
    })
    .await;
    let svc = c
        .get_service(GetServiceRequest {
            service_id: svc.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let version = svc.meta.as_ref().unwrap().version;
    let mut v2 = stored.clone();
    v2.mode = Some(service_spec::Mode::Replicated(ReplicatedService {
        replicas: 3,
    }));
    let updated = c
        .update_service(UpdateServiceRequest {
            service_id: svc.id.clone(),
            service_version: version,
            spec: Some(v2.clone()),
            rollback: false,
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(updated.spec_version, 2);
    let stale = c
        .update_service(UpdateServiceRequest {
            service_id: svc.id.clone(),
            service_version: version,
            spec: Some(v2),
            rollback: false,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::Aborted, "{stale}");
    assert!(stale.message().contains("out of sequence"), "{stale}");

    // A secret in use cannot go.
    let err = c
        .remove_secret(RemoveSecretRequest {
            secret_id: secret.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_joins_runs_assigned_tasks_and_is_marked_down_when_silent() {
    init_logs();
    let dir = Dir::new("worker");
    let m = builder(&dir.0).start().await.unwrap();
    let agent = FakeAgent::join(m.addr(), &token(&m, false)).await;
    eventually("node ready", || async {
        let n = m.store().view().get::<Node>(&agent.node_id)?;
        (n.status.as_ref()?.state() == NodeState::Ready && n.role() == NodeRole::Worker)
            .then_some(())
    })
    .await;

    // A worker certificate may not use the control API.
    let mut as_worker =
        swarm_api::v1::control_client::ControlClient::new(FakeAgent::channel(&agent.tls, m.addr()));
    let err = as_worker
        .list_services(ListServicesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");

    // A NEW task goes through allocation, scheduling and the agent.
    let task_id = swarm_api::id::new_id();
    m.store()
        .update(|tx| {
            tx.create(Task {
                id: task_id.clone(),
                spec: Some(TaskSpec {
                    container: Some(ContainerSpec {
                        command: vec!["true".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                desired_state: TaskState::Running.into(),
                status: Some(TaskStatus {
                    state: TaskState::New.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .map(drop)
        })
        .await
        .unwrap();
    eventually("task running on the worker", || async {
        let t = m.store().view().get::<Task>(&task_id)?;
        (t.state() == TaskState::Running).then_some(())
    })
    .await;
    // The manager's own node has no agent here: the worker got it.
    let t = m.store().view().get::<Task>(&task_id).unwrap();
    assert!(t.node_id == agent.node_id || t.node_id == m.node_id());
    assert!(agent.running.lock().contains_key(&task_id) || t.node_id == m.node_id());

    // Silence: the node is marked down after the grace period.
    agent.kill();
    eventually("node down", || async {
        let n = m.store().view().get::<Node>(&agent.node_id)?;
        (n.status.as_ref()?.state() == NodeState::Down).then_some(())
    })
    .await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_node_is_refused() {
    init_logs();
    let dir = Dir::new("removed");
    let m = builder(&dir.0).start().await.unwrap();
    let agent = FakeAgent::join(m.addr(), &token(&m, false)).await;
    eventually("node ready", || async {
        m.store().view().get::<Node>(&agent.node_id).map(drop)
    })
    .await;
    agent.kill();
    let mut c = control(&m).await;
    c.remove_node(RemoveNodeRequest {
        node_id: agent.node_id.clone(),
        force: true,
    })
    .await
    .unwrap();
    let channel = FakeAgent::channel(&agent.tls, m.addr());
    let err = eventually("refusal", || {
        let mut d = swarm_api::v1::dispatcher_client::DispatcherClient::new(channel.clone());
        async move { d.session(SessionRequest::default()).await.err() }
    })
    .await;
    assert_ne!(err.code(), tonic::Code::Ok);
    assert!(
        m.store()
            .view()
            .find::<Node>(By::All)
            .unwrap()
            .iter()
            .all(|n| n.id != agent.node_id)
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_forward_writes_to_the_leader() {
    init_logs();
    let dirs: Vec<Dir> = (0..3).map(|i| Dir::new(&format!("ha{i}"))).collect();
    let first = builder(&dirs[0].0).start().await.unwrap();
    let t = token(&first, true);
    let second = builder(&dirs[1].0)
        .join(first.addr(), t.to_string())
        .start()
        .await
        .unwrap();
    let third = builder(&dirs[2].0)
        .join(first.addr(), t.to_string())
        .start()
        .await
        .unwrap();
    eventually("three voters", || async {
        let s = first.raft().status().ok()?;
        (s.voters.len() == 3 && !s.changing).then_some(())
    })
    .await;
    let managers = [first, second, third];
    let follower = managers.iter().find(|m| !m.raft().is_leader()).unwrap();
    let mut c = control(follower).await;
    let net = c
        .create_network(CreateNetworkRequest {
            spec: Some(NetworkSpec {
                annotations: Some(Annotations {
                    name: "via-follower".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    for m in &managers {
        eventually("replicated", || async {
            m.store().view().get::<Network>(&net.id).map(drop)
        })
        .await;
    }
    // Manager nodes carry their raft status.
    eventually("manager status", || async {
        let nodes = managers[0].store().view().all::<Node>();
        (nodes
            .iter()
            .filter(|n| {
                n.role() == NodeRole::Manager
                    && n.manager_status.as_ref().is_some_and(|s| s.raft_id != 0)
            })
            .count()
            == 3)
            .then_some(())
    })
    .await;
    for m in managers {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_join_through_a_follower() {
    init_logs();
    let (_dirs, managers) = common::cluster::three_managers("joinfollower").await;
    let l = common::cluster::leader(&managers).await;
    let follower = &managers[(l + 1) % 3];
    let t = token(follower, false);
    // The follower passes the join to the leader, which records the node;
    // the new node then asks the follower about its certificate, possibly
    // before the follower applied that record.
    for _ in 0..10 {
        let enrollment = swarm_pki::join(follower.addr(), &t, &swarm_pki::JoinOptions::default())
            .await
            .unwrap();
        let id = enrollment.credentials.identity().node_id.clone();
        assert_eq!(enrollment.credentials.identity().role, NodeRole::Worker);
        eventually("the node recorded everywhere", || async {
            managers
                .iter()
                .all(|m| m.store().view().get::<Node>(&id).is_some())
                .then_some(())
        })
        .await;
    }
    for m in managers {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_manager_answers_nothing_even_on_open_connections() {
    init_logs();
    let dir = Dir::new("stopped");
    let m = builder(&dir.0).start().await.unwrap();
    let agent = FakeAgent::join(m.addr(), &token(&m, false)).await;
    agent.kill();
    let ch = FakeAgent::channel(&agent.tls, m.addr());
    let mut ca = swarm_api::v1::node_ca_client::NodeCaClient::new(ch.clone());
    ca.get_root_ca_certificate(GetRootCaCertificateRequest {})
        .await
        .unwrap();
    // A stream that never ends by itself, on the same connection.
    let mut health = swarm_api::health::health_client::HealthClient::new(ch.clone());
    let mut watch = health
        .watch(swarm_api::health::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();

    m.shutdown().await;
    // A stopping manager may still say it is not serving; then the
    // stream ends.
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match watch.message().await {
                Ok(Some(r)) if r.status() == ServingStatus::NotServing => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the open stream ends with the manager");
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    // The connection is gone (a call racing its end is cancelled), and
    // so is the listener.
    for _ in 0..2 {
        let err = ca
            .get_root_ca_certificate(GetRootCaCertificateRequest {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled
            ),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_turns_not_serving_when_the_quorum_is_lost() {
    init_logs();
    let (_dirs, mut managers) = common::cluster::three_managers("health").await;
    let l = common::cluster::leader(&managers).await;
    let agent = FakeAgent::join(managers[l].addr(), &token(&managers[l], false)).await;
    let last = managers.pop().unwrap();
    let ch = FakeAgent::channel(&agent.tls, last.addr());
    let mut health = swarm_api::health::health_client::HealthClient::new(ch);
    let check = |service: &str| swarm_api::health::HealthCheckRequest {
        service: service.into(),
    };
    let mut watch = health.watch(check("")).await.unwrap().into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let status = health
        .check(check("swarm.v1.Dispatcher"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);
    let unknown = health.check(check("swarm.v1.Nothing")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // The other two stop: the last one cannot see a leader any more.
    for m in managers {
        m.shutdown().await;
    }
    let changed = tokio::time::timeout(WAIT, watch.message())
        .await
        .expect("the watch reports the lost quorum");
    assert_eq!(
        changed.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    let status = health.check(check("")).await.unwrap().into_inner();
    assert_eq!(status.status(), ServingStatus::NotServing);
    last.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_renews_its_certificate_through_any_manager() {
    init_logs();
    let (_dirs, managers) = common::cluster::three_managers("renew").await;
    let l = common::cluster::leader(&managers).await;
    let agent = FakeAgent::join(managers[l].addr(), &token(&managers[l], false)).await;
    let before = agent.tls.credentials.current();
    for (i, m) in managers.iter().enumerate() {
        let renewed = swarm_pki::renew(m.addr(), &agent.tls, &swarm_pki::JoinOptions::default())
            .await
            .unwrap_or_else(|e| panic!("renewal through manager {i} (leader {l}): {e}"));
        let id = renewed.credentials.identity();
        assert_eq!(id.node_id, agent.node_id);
        assert_eq!(id.role, NodeRole::Worker);
        assert_ne!(
            renewed.credentials.chain()[0],
            before.chain()[0],
            "manager {i} answered with the old certificate"
        );
        agent.tls.apply(renewed).unwrap();
    }
    // Only a manager may renew for another node: a worker naming one is
    // refused by the leader.
    let other = FakeAgent::join(managers[l].addr(), &token(&managers[l], false)).await;
    let mut ca = swarm_api::v1::node_ca_client::NodeCaClient::new(FakeAgent::channel(
        &agent.tls,
        managers[l].addr(),
    ));
    let mut forged = tonic::Request::new(IssueNodeCertificateRequest {
        csr: swarm_pki::NodeKey::generate()
            .unwrap()
            .csr_pem()
            .unwrap()
            .into_bytes(),
        ..Default::default()
    });
    forged
        .metadata_mut()
        .insert("swarm-renew-for", other.node_id.parse().unwrap());
    let refused = ca.issue_node_certificate(forged).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");

    // Every renewal is recorded in the replicated store, whichever
    // manager signed it.
    let current = agent.tls.credentials.current().chain()[0].clone();
    for m in &managers {
        eventually("the last certificate recorded", || async {
            let n = m.store().view().get::<Node>(&agent.node_id)?;
            let pem = n.certificate.as_ref()?.certificate.clone();
            let chain = swarm_pki::parse_bundle_pem(&pem).ok()?;
            (chain.first() == Some(&current)).then_some(())
        })
        .await;
    }
    for m in managers {
        m.shutdown().await;
    }
}
