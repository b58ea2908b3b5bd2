//! The log broker's guarantees over the real protocol (fake agents over
//! mutual TLS): only the leader takes listeners (a follower names the
//! leader, and forwards clients); following picks up the nodes of tasks
//! placed later; a publisher may only publish what it was asked for.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use common::cluster::*;
use common::*;
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::log_broker_client::LogBrokerClient;
use swarm_api::v1::logs_client::LogsClient;
use swarm_api::v1::*;
use swarm_manager::Manager;
use swarm_manager::dispatcher::LEADER_ADDR_KEY;
use swarm_store::By;
use tonic::transport::Channel;

fn web(replicas: u64) -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations {
            name: "web".into(),
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
        mode: Some(service_spec::Mode::Replicated(ReplicatedService {
            replicas,
        })),
        ..Default::default()
    }
}

async fn create(c: &mut ControlClient<Channel>, spec: ServiceSpec) -> Service {
    c.create_service(CreateServiceRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap()
}

/// Running tasks of the service, by the store.
fn running(m: &Manager, svc: &str) -> Vec<Task> {
    m.store()
        .view()
        .find::<Task>(By::ServiceId(svc))
        .unwrap()
        .iter()
        .filter(|t| t.state() == TaskState::Running && t.desired_state() == TaskState::Running)
        .map(|t| (**t).clone())
        .collect()
}

async fn logs_client(m: &Manager) -> LogsClient<Channel> {
    LogsClient::new(
        swarm_manager::local::local_channel(m.control_socket().unwrap())
            .await
            .unwrap(),
    )
}

fn follow_service(service: &str, tail: i64) -> SubscribeLogsRequest {
    SubscribeLogsRequest {
        selector: Some(LogSelector {
            service_ids: vec![service.to_string()],
            ..Default::default()
        }),
        options: Some(LogSubscriptionOptions {
            follow: true,
            tail,
            ..Default::default()
        }),
    }
}

fn line(task: &Task, text: &str) -> LogMessage {
    LogMessage {
        context: Some(LogContext {
            service_id: task.service_id.clone(),
            node_id: task.node_id.clone(),
            task_id: task.id.clone(),
        }),
        timestamp: Some(Timestamp::now()),
        stream: LogStream::Stdout.into(),
        data: text.as_bytes().to_vec(),
    }
}

/// Publishes `messages` for `subscription` as the agent behind `ch`.
async fn publish(
    ch: Channel,
    subscription: &str,
    messages: Vec<LogMessage>,
) -> Result<(), tonic::Status> {
    let msg = PublishLogsMessage {
        subscription_id: subscription.to_string(),
        messages,
        close: false,
    };
    LogBrokerClient::new(ch)
        .publish_logs(futures::stream::iter([msg]))
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_takes_listeners_and_a_follower_forwards_clients() {
    init_logs();
    let (_dirs, managers) = three_managers("logleader").await;
    let l = leader(&managers).await;
    let f = (l + 1) % managers.len();
    let token = managers[l].join_tokens().unwrap().worker;
    let agent = FakeAgent::join_any(&addrs(&managers), &token).await;

    // A follower refuses, naming the leader.
    let refused = LogBrokerClient::new(FakeAgent::channel(&agent.tls, managers[f].addr()))
        .listen_subscriptions(ListenSubscriptionsRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let named = refused.metadata().get(LEADER_ADDR_KEY).unwrap();
    assert_eq!(named.to_str().unwrap(), managers[l].addr());

    // Listening on the leader, the agent serves a client of the follower.
    let ch = FakeAgent::channel(&agent.tls, managers[l].addr());
    let _serving = agent.logs.clone().serve(ch);
    let mut c = control(&managers[l]).await;
    let svc = create(&mut c, web(1)).await;
    let task = eventually("the web task running", || async {
        running(&managers[l], &svc.id).pop()
    })
    .await;
    eventually("the agent listening", || async {
        agent.logs.listening().then_some(())
    })
    .await;
    agent.logs.write(&task, "hello");
    let mut stream = logs_client(&managers[f])
        .await
        .subscribe_logs(follow_service("web", -1))
        .await
        .unwrap()
        .into_inner();
    let got = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].data, b"hello");
    for m in managers {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn following_asks_the_nodes_of_tasks_placed_later() {
    init_logs();
    let dir = Dir::new("logscale");
    let m = builder(&dir.0)
        .availability(NodeAvailability::Drain)
        .start()
        .await
        .unwrap();
    let token = m.join_tokens().unwrap().worker;
    let mut agents = vec![
        FakeAgent::join(m.addr(), &token).await,
        FakeAgent::join(m.addr(), &token).await,
    ];
    for a in &mut agents {
        a.serve_logs();
    }
    let mut c = control(&m).await;
    let svc = create(&mut c, web(1)).await;
    let first = eventually("one web task running", || async {
        running(&m, &svc.id).pop()
    })
    .await;
    eventually("agents listening", || async {
        agents.iter().all(|a| a.logs.listening()).then_some(())
    })
    .await;
    let mut stream = logs_client(&m)
        .await
        .subscribe_logs(follow_service(&svc.id, 0))
        .await
        .unwrap()
        .into_inner();
    let holder = agents.iter().find(|a| a.node_id == first.node_id).unwrap();
    let other = agents.iter().find(|a| a.node_id != first.node_id).unwrap();
    eventually("the holder asked", || async {
        (holder.logs.serving() == 1).then_some(())
    })
    .await;
    assert_eq!(other.logs.asked(), 0, "no task there yet");

    // Scale up: the new task lands on the other node, which is asked for
    // it, and its lines reach the client.
    let now = c
        .get_service(GetServiceRequest {
            service_id: svc.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let mut spec = now.spec.clone().unwrap();
    spec.mode = web(2).mode;
    c.update_service(UpdateServiceRequest {
        service_id: svc.id.clone(),
        service_version: now.meta.unwrap().version,
        spec: Some(spec),
        ..Default::default()
    })
    .await
    .unwrap();
    let second = eventually("the second task running", || async {
        running(&m, &svc.id)
            .into_iter()
            .find(|t| t.node_id == other.node_id)
    })
    .await;
    eventually("the other node asked", || async {
        (other.logs.serving() == 1).then_some(())
    })
    .await;
    other.logs.write(&second, "from the new task");
    let got = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ctx = got.messages[0].context.clone().unwrap();
    assert_eq!(
        (ctx.task_id, got.messages[0].data.clone()),
        (second.id.clone(), b"from the new task".to_vec())
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_may_only_publish_what_it_was_asked_for() {
    init_logs();
    let dir = Dir::new("logcheck");
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
    // Two tasks on two of the three nodes.
    let svc = create(&mut c, web(2)).await;
    let tasks = eventually("two web tasks running on two nodes", || async {
        let t = running(&m, &svc.id);
        (t.len() == 2 && t[0].node_id != t[1].node_id).then_some(t)
    })
    .await;
    let agent = |node: &str| agents.iter().find(|a| a.node_id == node).unwrap();
    let (mine, theirs) = (&tasks[0], &tasks[1]);
    let holder = agent(&mine.node_id);
    let bystander = agents
        .iter()
        .find(|a| tasks.iter().all(|t| t.node_id != a.node_id))
        .unwrap();
    let holder_ch = FakeAgent::channel(&holder.tls, m.addr());
    let bystander_ch = FakeAgent::channel(&bystander.tls, m.addr());
    // They listen by hand: the holder is asked, the bystander is not.
    let mut subs = LogBrokerClient::new(holder_ch.clone())
        .listen_subscriptions(ListenSubscriptionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let _quiet = LogBrokerClient::new(bystander_ch.clone())
        .listen_subscriptions(ListenSubscriptionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut stream = logs_client(&m)
        .await
        .subscribe_logs(follow_service("web", 0))
        .await
        .unwrap()
        .into_inner();
    let sub = tokio::time::timeout(WAIT, subs.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(sub.selector.unwrap().task_ids, vec![mine.id.clone()]);

    // A node that was not asked may not publish for the subscription.
    let err = publish(bystander_ch, &sub.id, vec![line(mine, "forged")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // The asked node may not publish the lines of another node's task.
    let err = publish(holder_ch.clone(), &sub.id, vec![line(theirs, "forged")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    // Its own task's lines go through with the context the store gives
    // (whatever the agent claimed); lines of tasks the store does not
    // know are dropped.
    let mut lying = line(mine, "mine");
    lying.context.as_mut().unwrap().node_id = bystander.node_id.clone();
    lying.context.as_mut().unwrap().service_id = "someone-else".into();
    let mut unknown = mine.clone();
    unknown.id = "notatask".into();
    publish(
        holder_ch.clone(),
        &sub.id,
        vec![line(&unknown, "unknown"), lying],
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.messages.len(), 1, "{got:?}");
    let ctx = got.messages[0].context.clone().unwrap();
    assert_eq!(got.messages[0].data, b"mine");
    assert_eq!(
        (ctx.task_id, ctx.node_id, ctx.service_id),
        (mine.id.clone(), holder.node_id.clone(), svc.id.clone())
    );
    m.shutdown().await;
}
