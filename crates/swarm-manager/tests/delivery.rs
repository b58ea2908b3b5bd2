//! What reaches which agent: secrets and configs only where a task uses
//! them, and log subscriptions only where the selected tasks run (and
//! their lines back to a late subscriber, tail then follow).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::logs_client::LogsClient;
use swarm_api::v1::*;
use swarm_manager::Manager;
use swarm_store::By;
use tonic::transport::Channel;

fn spec(name: &str, mode: service_spec::Mode) -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations {
            name: name.into(),
            ..Default::default()
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: "v1".into(),
                command: vec!["sleep".into(), "1000".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(mode),
        ..Default::default()
    }
}

fn replicated(n: u64) -> service_spec::Mode {
    service_spec::Mode::Replicated(ReplicatedService { replicas: n })
}

async fn create(c: &mut ControlClient<Channel>, spec: ServiceSpec) -> Service {
    c.create_service(CreateServiceRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap()
}

/// The nodes running a task of the service (wanted running).
fn nodes_running(m: &Manager, svc: &str) -> Vec<String> {
    let mut nodes: Vec<String> = m
        .store()
        .view()
        .find::<Task>(By::ServiceId(svc))
        .unwrap()
        .iter()
        .filter(|t| t.state() == TaskState::Running && t.desired_state() == TaskState::Running)
        .map(|t| t.node_id.clone())
        .collect();
    nodes.sort();
    nodes
}

async fn manager_and_agents(tag: &str, n: usize) -> (Dir, Manager, Vec<FakeAgent>) {
    let dir = Dir::new(tag);
    // The manager's own node runs no agent here: keep tasks off it.
    let m = builder(&dir.0)
        .availability(NodeAvailability::Drain)
        .start()
        .await
        .unwrap();
    let token = m.join_tokens().unwrap().worker;
    let mut agents = Vec::new();
    for _ in 0..n {
        agents.push(FakeAgent::join(m.addr(), &token).await);
    }
    (dir, m, agents)
}

fn agent<'a>(agents: &'a [FakeAgent], node: &str) -> &'a FakeAgent {
    agents.iter().find(|a| a.node_id == node).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_and_configs_reach_only_the_nodes_whose_tasks_use_them() {
    init_logs();
    let (_dir, m, agents) = manager_and_agents("secrets", 3).await;
    let mut c = control(&m).await;
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
    let config = c
        .create_config(CreateConfigRequest {
            spec: Some(ConfigSpec {
                annotations: Some(Annotations {
                    name: "settings".into(),
                    ..Default::default()
                }),
                data: b"verbose=1".to_vec(),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    let mut private = spec("private", replicated(1));
    let container = private.task.as_mut().unwrap().container.as_mut().unwrap();
    container.secrets = vec![SecretReference {
        secret_name: "pw".into(),
        file: Some(FileTarget {
            name: "pw".into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    container.configs = vec![ConfigReference {
        config_name: "settings".into(),
        file: Some(FileTarget {
            name: "settings".into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let private = create(&mut c, private).await;
    // Every node runs a task of this one, so every node's assignments
    // stream is known to work.
    let public = create(
        &mut c,
        spec("public", service_spec::Mode::Global(GlobalService {})),
    )
    .await;

    let first = eventually("private and public tasks running", || async {
        let p = nodes_running(&m, &private.id);
        let all = nodes_running(&m, &public.id);
        let delivered = agents
            .iter()
            .all(|a| a.running.lock().values().any(|t| t.service_id == public.id));
        (p.len() == 1 && all.len() == 3 && delivered).then(|| p[0].clone())
    })
    .await;
    let holder = agent(&agents, &first);
    eventually(
        "the secret and config delivered with their data",
        || async {
            let d = holder.delivered.lock();
            (d.secrets.get(&secret.id).map(Vec::as_slice) == Some(b"hunter2".as_slice())
                && d.configs.get(&config.id).map(Vec::as_slice) == Some(b"verbose=1".as_slice()))
            .then_some(())
        },
    )
    .await;
    for a in agents.iter().filter(|a| a.node_id != first) {
        let d = a.delivered.lock();
        assert!(d.secrets_seen.is_empty(), "{} got a secret", a.node_id);
        assert!(d.configs_seen.is_empty(), "{} got a config", a.node_id);
    }

    // The task moves (its node drained): the new node gets the secret, the
    // old one is told to remove it.
    let n = c
        .get_node(GetNodeRequest {
            node_id: first.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    let mut node_spec = n.spec.clone().unwrap();
    node_spec.availability = NodeAvailability::Drain.into();
    c.update_node(UpdateNodeRequest {
        node_id: first.clone(),
        node_version: n.meta.unwrap().version,
        spec: Some(node_spec),
    })
    .await
    .unwrap();
    let second = eventually("the private task moved", || async {
        let p = nodes_running(&m, &private.id);
        (p.len() == 1 && p[0] != first).then(|| p[0].clone())
    })
    .await;
    let mover = agent(&agents, &second);
    eventually(
        "secret removed from the drained node, given to the new one",
        || async {
            let old = holder.delivered.lock();
            let new = mover.delivered.lock();
            (old.secrets.is_empty()
                && old.configs.is_empty()
                && new.secrets.contains_key(&secret.id)
                && new.configs.contains_key(&config.id))
            .then_some(())
        },
    )
    .await;

    // The service goes: so does its secret.
    c.remove_service(RemoveServiceRequest {
        service_id: private.id.clone(),
    })
    .await
    .unwrap();
    eventually("secret removed with the service", || async {
        let d = mover.delivered.lock();
        (d.secrets.is_empty() && d.configs.is_empty()).then_some(())
    })
    .await;

    // The third node never had a task using them, so never saw them.
    let bystanders: Vec<&FakeAgent> = agents
        .iter()
        .filter(|a| a.node_id != first && a.node_id != second)
        .collect();
    assert_eq!(bystanders.len(), 1);
    for a in bystanders {
        let d = a.delivered.lock();
        assert!(d.secrets_seen.is_empty() && d.configs_seen.is_empty());
    }
    m.shutdown().await;
}

/// Reads until `n` lines came (or the stream ended); returns them as
/// (task id, text).
async fn read_lines(
    stream: &mut tonic::Streaming<SubscribeLogsMessage>,
    n: usize,
) -> BTreeSet<(String, String)> {
    let mut got = BTreeSet::new();
    while got.len() < n {
        let msg = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("log lines in time")
            .unwrap();
        let Some(msg) = msg else { break };
        for l in msg.messages {
            let ctx = l.context.unwrap();
            got.insert((ctx.task_id, String::from_utf8(l.data).unwrap()));
        }
    }
    got
}

fn lines(tasks: &[Task], range: std::ops::Range<usize>) -> BTreeSet<(String, String)> {
    tasks
        .iter()
        .flat_map(|t| range.clone().map(|i| (t.id.clone(), format!("line {i}"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_log_subscriber_gets_the_tail_then_follows() {
    init_logs();
    let (_dir, m, mut agents) = manager_and_agents("logs", 3).await;
    for a in &mut agents {
        a.serve_logs();
    }
    let mut c = control(&m).await;
    let web = create(&mut c, spec("web", replicated(2))).await;
    let nodes = eventually("two web tasks running on two nodes", || async {
        let n = nodes_running(&m, &web.id);
        (n.len() == 2 && n[0] != n[1]).then_some(n)
    })
    .await;
    eventually("agents listening for subscriptions", || async {
        agents.iter().all(|a| a.logs.listening()).then_some(())
    })
    .await;
    let tasks: Vec<Task> = m
        .store()
        .view()
        .find::<Task>(By::ServiceId(&web.id))
        .unwrap()
        .iter()
        .map(|t| (**t).clone())
        .collect();
    // The tasks wrote five lines each before anyone asked.
    for t in &tasks {
        for i in 0..5 {
            agent(&agents, &t.node_id)
                .logs
                .write(t, &format!("line {i}"));
        }
    }

    let ch = swarm_manager::local::local_channel(m.control_socket().unwrap())
        .await
        .unwrap();
    let mut logs = LogsClient::new(ch);
    let mut follow = logs
        .subscribe_logs(SubscribeLogsRequest {
            selector: Some(LogSelector {
                service_ids: vec!["web".into()],
                ..Default::default()
            }),
            options: Some(LogSubscriptionOptions {
                follow: true,
                tail: 2,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        read_lines(&mut follow, 4).await,
        lines(&tasks, 3..5),
        "the tail"
    );
    for t in &tasks {
        agent(&agents, &t.node_id).logs.write(t, "line 5");
    }
    assert_eq!(
        read_lines(&mut follow, 2).await,
        lines(&tasks, 5..6),
        "followed"
    );
    // Only the nodes running the selected tasks were asked.
    for a in &agents {
        let asked = usize::from(nodes.contains(&a.node_id));
        assert_eq!(a.logs.asked(), asked, "node {}", a.node_id);
    }

    // The subscriber leaves: the agents are told to stop.
    drop(follow);
    eventually("publishers stopped", || async {
        agents.iter().all(|a| a.logs.serving() == 0).then_some(())
    })
    .await;

    // Without follow: everything so far, then the stream ends.
    let mut all = logs
        .subscribe_logs(SubscribeLogsRequest {
            selector: Some(LogSelector {
                service_ids: vec![web.id.clone()],
                ..Default::default()
            }),
            options: Some(LogSubscriptionOptions {
                follow: false,
                tail: -1,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read_lines(&mut all, usize::MAX).await, lines(&tasks, 0..6));
    m.shutdown().await;
}
