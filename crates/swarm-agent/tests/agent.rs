//! An agent against a real in-process manager over mutual TLS: it joins
//! with the worker token, runs what the dispatcher assigns, reports
//! through the real dispatcher, restarts from its stored certificate, and
//! is refused with a wrong token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::time::Duration;

use common::*;
use swarm_agent::{Agent, AgentError, AgentHandle};
use swarm_api::v1::*;
use swarm_manager::dispatcher::DispatcherConfig;
use swarm_manager::{Manager, ManagerBuilder};
use swarm_pki::{JoinError, JoinToken};

async fn manager(dir: &std::path::Path) -> Manager {
    manager_at(dir, "127.0.0.1:0").await
}

async fn manager_at(dir: &std::path::Path, addr: &str) -> Manager {
    ManagerBuilder::new(dir.join("manager"))
        .listen_addr(addr.parse().unwrap())
        .raft_config(swarm_raft::RaftConfig::fast())
        .dispatcher_config(DispatcherConfig {
            heartbeat_period: Duration::from_millis(300),
            heartbeat_jitter: Duration::from_millis(30),
            status_flush_interval: Duration::from_millis(20),
            network_flush_interval: Duration::from_millis(20),
            ..DispatcherConfig::default()
        })
        .start()
        .await
        .unwrap()
}

async fn agent(m: &Manager, dir: &std::path::Path, token: Option<String>) -> AgentHandle {
    let mut b = Agent::builder(dir.join("agent"))
        .manager(m.addr())
        .hostname("worker-1")
        .label("zone", "a")
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500));
    if let Some(t) = token {
        b = b.join_token(t);
    }
    b.build().unwrap().start().await.unwrap()
}

fn task(node: &str, script: &str) -> Task {
    Task {
        id: swarm_api::id::new_id(),
        node_id: node.to_string(),
        spec: Some(TaskSpec {
            container: Some(ContainerSpec {
                command: vec!["/bin/sh".into(), "-c".into(), script.into()],
                stop_grace_period: Some(swarm_api::v1::Duration::from_secs(5)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        desired_state: TaskState::Running.into(),
        status: Some(TaskStatus {
            state: TaskState::Assigned.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn put(m: &Manager, t: Task) {
    m.store().update(|tx| tx.create(t).map(drop)).await.unwrap();
}

async fn stored_state(m: &Manager, id: &str, want: TaskState) -> Task {
    eventually(&format!("task {id} {want:?} in the store"), || async {
        let t = m.store().view().get::<Task>(id)?;
        (t.state() == want).then(|| (*t).clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_joins_runs_its_tasks_and_restarts_from_its_certificate() {
    init_logs();
    let dir = Dir::new("e2e");
    let m = manager(&dir.0).await;
    let token = m.join_tokens().unwrap().worker.to_string();
    let a = agent(&m, &dir.0, Some(token)).await;
    let node_id = a.node_id().to_string();

    // The node registers with what the agent describes.
    let node = eventually("node ready", || async {
        let n = m.store().view().get::<Node>(&node_id)?;
        (n.status.as_ref()?.state() == NodeState::Ready).then(|| (*n).clone())
    })
    .await;
    assert_eq!(node.role(), NodeRole::Worker);
    let desc = node.description.unwrap();
    assert_eq!(desc.hostname, "worker-1");
    assert_eq!(desc.executor, "process");
    assert_eq!(desc.engine.unwrap().labels["zone"], "a");
    assert!(desc.resources.unwrap().nano_cpus >= 1_000_000_000);
    // The key is stored private.
    let key = dir.0.join("agent/certificates").join(swarm_pki::KEY_FILE);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Assigned tasks run and report through the dispatcher.
    let done = task(&node_id, "exit 0");
    let failing = task(&node_id, "exit 7");
    let long = task(&node_id, "exec sleep 600");
    put(&m, done.clone()).await;
    put(&m, failing.clone()).await;
    put(&m, long.clone()).await;
    let t = stored_state(&m, &done.id, TaskState::Complete).await;
    assert_eq!(t.status.unwrap().applied_by, node_id);
    let t = stored_state(&m, &failing.id, TaskState::Failed).await;
    let status = t.status.unwrap();
    assert!(status.err.contains("code 7"), "{status:?}");
    assert_eq!(status.container_status.unwrap().exit_code, 7);
    let t = stored_state(&m, &long.id, TaskState::Running).await;
    let pid = t.status.unwrap().container_status.unwrap().pid;

    // Desired SHUTDOWN stops it.
    m.store()
        .update(|tx| {
            let mut t = (*tx.get::<Task>(&long.id).unwrap()).clone();
            t.desired_state = TaskState::Shutdown.into();
            tx.update(t).map(drop)
        })
        .await
        .unwrap();
    stored_state(&m, &long.id, TaskState::Shutdown).await;
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    // Restart from the stored certificate: no token needed, same node.
    a.shutdown().await;
    let a = agent(&m, &dir.0, None).await;
    assert_eq!(a.node_id(), node_id);
    tokio::time::timeout(WAIT, a.connected()).await.unwrap();
    let again = task(&node_id, "exit 0");
    put(&m, again.clone()).await;
    stored_state(&m, &again.id, TaskState::Complete).await;
    // Nothing known was run twice: the completed task stays complete.
    assert_eq!(
        m.store().view().get::<Task>(&done.id).unwrap().state(),
        TaskState::Complete
    );
    a.shutdown().await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_join_token_is_refused_with_a_clear_error() {
    init_logs();
    let dir = Dir::new("token");
    let m = manager(&dir.0).await;
    let real = m.join_tokens().unwrap().worker;

    // Another cluster's token: the root CA digest does not match.
    let other = JoinToken::generate([7u8; 32], &mut rand::rng());
    let err = Agent::builder(dir.0.join("a1"))
        .manager(m.addr())
        .join_token(other.to_string())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::Join(JoinError::RootDigestMismatch { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("root CA"), "{err}");

    // The right cluster, a wrong secret: the manager refuses.
    let forged = JoinToken::generate(*real.root_digest(), &mut rand::rng());
    let err = Agent::builder(dir.0.join("a2"))
        .manager(m.addr())
        .join_token(forged.to_string())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Join(JoinError::Rpc(_))), "{err}");
    assert!(
        !dir.0
            .join("a2/certificates")
            .join(swarm_pki::KEY_FILE)
            .exists()
    );

    // Not a token at all, and no token without a certificate.
    let err = Agent::builder(dir.0.join("a3"))
        .manager(m.addr())
        .join_token("SWMTKN-1-nope")
        .build()
        .unwrap_err();
    assert!(matches!(err, AgentError::Token(_)), "{err}");
    let err = Agent::builder(dir.0.join("a4"))
        .manager(m.addr())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::NotJoined(_)), "{err}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_heartbeats_and_reconnects_when_the_manager_comes_back() {
    init_logs();
    let dir = Dir::new("reconnect");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let m = manager_at(&dir.0, &addr).await;
    let token = m.join_tokens().unwrap().worker.to_string();
    let a = agent(&m, &dir.0, Some(token)).await;
    let node_id = a.node_id().to_string();
    let long = task(&node_id, "exec sleep 600");
    put(&m, long.clone()).await;
    stored_state(&m, &long.id, TaskState::Running).await;

    // Heartbeats at the manager's period keep the node ready past several
    // grace periods (300 ms x 3).
    let counters = m.dispatcher().counters();
    let base = counters
        .heartbeats
        .load(std::sync::atomic::Ordering::Relaxed);
    eventually("heartbeats", || async {
        (counters
            .heartbeats
            .load(std::sync::atomic::Ordering::Relaxed)
            >= base + 6)
            .then_some(())
    })
    .await;
    let n = m.store().view().get::<Node>(&node_id).unwrap();
    assert_eq!(n.status.as_ref().unwrap().state(), NodeState::Ready);

    // The manager goes away and comes back on the same address.
    m.shutdown().await;
    eventually("session lost", || async {
        (!a.is_connected()).then_some(())
    })
    .await;
    let m = manager_at(&dir.0, &addr).await;
    tokio::time::timeout(WAIT, a.connected()).await.unwrap();
    eventually("node ready again", || async {
        let n = m.store().view().get::<Node>(&node_id)?;
        (n.status.as_ref()?.state() == NodeState::Ready).then_some(())
    })
    .await;
    // The task kept running and still answers to its desired state.
    m.store()
        .update(|tx| {
            let mut t = (*tx.get::<Task>(&long.id).unwrap()).clone();
            t.desired_state = TaskState::Shutdown.into();
            tx.update(t).map(drop)
        })
        .await
        .unwrap();
    stored_state(&m, &long.id, TaskState::Shutdown).await;
    a.shutdown().await;
    m.shutdown().await;
}
