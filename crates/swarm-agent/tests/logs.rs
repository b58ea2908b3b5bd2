//! `service logs` end to end in one process: a real manager (raft, control
//! API on its local socket, log broker) and a real agent running the
//! service's task as a process. The client gets the task's last lines,
//! then follows new ones, and keeps following when the task is restarted
//! (a new task, picked up by the agent and published from its first line).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use swarm_agent::{Agent, AgentHandle};
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::logs_client::LogsClient;
use swarm_api::v1::*;
use swarm_manager::dispatcher::DispatcherConfig;
use swarm_manager::{Manager, ManagerBuilder};
use tonic::transport::Channel;

async fn manager(dir: &std::path::Path) -> Manager {
    ManagerBuilder::new(dir.join("manager"))
        .listen_addr("127.0.0.1:0".parse().unwrap())
        .control_socket(dir.join("control.sock"))
        .raft_config(swarm_raft::RaftConfig::fast())
        .dispatcher_config(DispatcherConfig {
            heartbeat_period: Duration::from_millis(300),
            heartbeat_jitter: Duration::from_millis(30),
            status_flush_interval: Duration::from_millis(20),
            network_flush_interval: Duration::from_millis(20),
            ..DispatcherConfig::default()
        })
        // The manager's own node runs no agent here: tasks go to the worker.
        .availability(NodeAvailability::Drain)
        .start()
        .await
        .unwrap()
}

async fn agent(m: &Manager, dir: &std::path::Path) -> AgentHandle {
    Agent::builder(dir.join("agent"))
        .manager(m.addr())
        .join_token(m.join_tokens().unwrap().worker.to_string())
        .hostname("worker-1")
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

/// A service whose task writes a line to stderr and five to stdout, waits
/// for `go` to exist, writes a sixth and sleeps.
fn web(go: &std::path::Path) -> ServiceSpec {
    let script = format!(
        "echo oops >&2; for i in 1 2 3 4 5; do echo line $i; done; \
         while [ ! -e {go} ]; do sleep 0.05; done; echo line 6; exec sleep 600",
        go = go.display()
    );
    ServiceSpec {
        annotations: Some(Annotations {
            name: "web".into(),
            ..Default::default()
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                command: vec!["/bin/sh".into(), "-c".into(), script],
                ..Default::default()
            }),
            restart: Some(RestartPolicy {
                condition: RestartCondition::Any.into(),
                delay: Some(Duration::from_millis(100).into()),
                max_attempts: 0,
                window: None,
            }),
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedService {
            replicas: 1,
        })),
        ..Default::default()
    }
}

/// The running task of the service other than `not`.
async fn running_task(control: &ControlClient<Channel>, service: &str, not: Option<&str>) -> Task {
    eventually("a web task running", || async {
        control
            .clone()
            .list_tasks(ListTasksRequest {
                service_ids: vec![service.to_string()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .tasks
            .into_iter()
            .find(|t| t.state() == TaskState::Running && Some(t.id.as_str()) != not)
    })
    .await
}

/// One line as the client sees it: task, stream, text.
type Line = (String, LogStream, String);

/// Reads until `n` lines came, or the stream ended (`n = usize::MAX`).
async fn read(stream: &mut tonic::Streaming<SubscribeLogsMessage>, n: usize) -> Vec<Line> {
    let mut got = Vec::new();
    while got.len() < n {
        let msg = tokio::time::timeout(WAIT, stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {got:?} in time"))
            .unwrap();
        let Some(msg) = msg else { break };
        for l in msg.messages {
            let ctx = l.context.clone().unwrap();
            assert!(l.timestamp.is_some(), "a line without a time: {l:?}");
            got.push((ctx.task_id, l.stream(), String::from_utf8(l.data).unwrap()));
        }
    }
    got
}

fn lines(task: &str, numbers: std::ops::RangeInclusive<u32>) -> Vec<Line> {
    numbers
        .map(|i| (task.to_string(), LogStream::Stdout, format!("line {i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_logs_tail_then_follow_across_a_restart() {
    init_logs();
    let dir = Dir::new("logs");
    let m = manager(&dir.0).await;
    let a = agent(&m, &dir.0).await;
    let ch: Channel = swarm_manager::local::local_channel(m.control_socket().unwrap())
        .await
        .unwrap();
    let mut control = ControlClient::new(ch.clone());
    let mut logs = LogsClient::new(ch);
    let go = dir.0.join("go");
    let svc = control
        .create_service(CreateServiceRequest {
            spec: Some(web(&go)),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let first = running_task(&control, &svc.id, None).await;
    assert_eq!(first.node_id, a.node_id());
    eventually("the task wrote its first lines", || async {
        a.worker()
            .log_sources()
            .into_iter()
            .find(|s| s.context.task_id == first.id)
            .filter(|s| s.buffer.lines().len() == 6)
    })
    .await;

    // Not following: every line kept, each on its stream, then the end.
    let mut all = logs
        .subscribe_logs(SubscribeLogsRequest {
            selector: Some(LogSelector {
                service_ids: vec!["web".into()],
                ..Default::default()
            }),
            options: Some(LogSubscriptionOptions {
                tail: -1,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let got: BTreeSet<Line> = read(&mut all, usize::MAX).await.into_iter().collect();
    let mut want: BTreeSet<Line> = lines(&first.id, 1..=5).into_iter().collect();
    want.insert((first.id.clone(), LogStream::Stderr, "oops".into()));
    assert_eq!(got, want);

    // Following stdout: the last two lines, then new ones.
    let mut follow = logs
        .subscribe_logs(SubscribeLogsRequest {
            selector: Some(LogSelector {
                service_ids: vec![svc.id.clone()],
                ..Default::default()
            }),
            options: Some(LogSubscriptionOptions {
                follow: true,
                tail: 2,
                streams: vec![LogStream::Stdout.into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        read(&mut follow, 2).await,
        lines(&first.id, 4..=5),
        "the tail"
    );
    std::fs::write(&go, b"").unwrap();
    assert_eq!(
        read(&mut follow, 1).await,
        lines(&first.id, 6..=6),
        "followed"
    );

    // The task dies and is restarted as a new task: followed from its
    // first line.
    let pid = first.status.unwrap().container_status.unwrap().pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let second = running_task(&control, &svc.id, Some(&first.id)).await;
    assert_eq!(
        read(&mut follow, 6).await,
        lines(&second.id, 1..=6),
        "the restarted task"
    );
    drop(follow);

    // The agent goes: its listener is forgotten, and asking for the logs
    // it held is a clear error instead of an empty stream.
    let node = a.node_id().to_string();
    a.shutdown().await;
    let err = eventually("the agent's listener forgotten", || async {
        let r = logs
            .clone()
            .subscribe_logs(SubscribeLogsRequest {
                selector: Some(LogSelector {
                    service_ids: vec!["web".into()],
                    ..Default::default()
                }),
                options: Some(LogSubscriptionOptions {
                    tail: -1,
                    ..Default::default()
                }),
            })
            .await;
        r.err()
    })
    .await;
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("node {node} is not connected")),
        "{err:?}"
    );
    m.shutdown().await;
}
