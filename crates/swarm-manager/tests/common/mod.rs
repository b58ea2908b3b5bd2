//! Managers in one process (real mTLS gRPC on loopback) and fake agents
//! that speak the real dispatcher protocol.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a test harness module: each test file uses a different part"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::dispatcher_client::DispatcherClient;
use swarm_api::v1::*;
use swarm_manager::dispatcher::DispatcherConfig;
use swarm_manager::{Manager, ManagerBuilder};
use swarm_pki::{JoinOptions, JoinToken, NodeChannelBuilder, NodeTls};
use swarm_raft::RaftConfig;
use tonic::transport::Channel;

pub const WAIT: Duration = Duration::from_secs(30);

/// A scratch directory removed on drop.
pub struct Dir(pub std::path::PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "swarm-mgr-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn fast_dispatcher() -> DispatcherConfig {
    DispatcherConfig {
        heartbeat_period: Duration::from_millis(200),
        heartbeat_jitter: Duration::from_millis(20),
        status_flush_interval: Duration::from_millis(20),
        network_flush_interval: Duration::from_millis(20),
        ..DispatcherConfig::default()
    }
}

pub fn builder(dir: &std::path::Path) -> ManagerBuilder {
    ManagerBuilder::new(dir.join("state"))
        .listen_addr("127.0.0.1:0".parse().unwrap())
        .control_socket(dir.join("state").join("control.sock"))
        .raft_config(RaftConfig::fast())
        .dispatcher_config(fast_dispatcher())
}

pub async fn control(m: &Manager) -> ControlClient<Channel> {
    let ch = swarm_manager::local::local_channel(m.control_socket().unwrap())
        .await
        .unwrap();
    ControlClient::new(ch)
}

pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Polls `f` until it gives a value, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fake agent: joins with a token, keeps a session, runs whatever it is
/// assigned instantly (RUNNING; FAILED for the image "fail"), stops what
/// it is told to stop (SHUTDOWN), and can stop heartbeating.
pub struct FakeAgent {
    pub node_id: String,
    pub tls: NodeTls,
    task: tokio::task::JoinHandle<()>,
    pub running: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<String, Task>>>,
    pub secrets: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeSet<String>>>,
}

impl FakeAgent {
    pub async fn join(manager_addr: &str, token: &JoinToken) -> FakeAgent {
        let enrollment = swarm_pki::join(manager_addr, token, &JoinOptions::default())
            .await
            .unwrap();
        let node_id = enrollment.credentials.identity().node_id.clone();
        let tls = NodeTls::new(enrollment).unwrap();
        FakeAgent::start(manager_addr, tls, node_id)
    }

    pub fn channel(tls: &NodeTls, addr: &str) -> Channel {
        NodeChannelBuilder::new(tls.client_tls().unwrap())
            .connect_lazy(addr)
            .unwrap()
    }

    pub fn start(addr: &str, tls: NodeTls, node_id: String) -> FakeAgent {
        let running =
            std::sync::Arc::new(parking_lot::Mutex::new(std::collections::BTreeMap::new()));
        let secrets =
            std::sync::Arc::new(parking_lot::Mutex::new(std::collections::BTreeSet::new()));
        let ch = FakeAgent::channel(&tls, addr);
        let (r, s) = (running.clone(), secrets.clone());
        let host = node_id.clone();
        let task = tokio::spawn(async move {
            loop {
                let _ = FakeAgent::session(ch.clone(), &host, r.clone(), s.clone()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        FakeAgent {
            node_id,
            tls,
            task,
            running,
            secrets,
        }
    }

    async fn session(
        ch: Channel,
        host: &str,
        running: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<String, Task>>>,
        secrets: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeSet<String>>>,
    ) -> Result<(), tonic::Status> {
        let mut d = DispatcherClient::new(ch);
        let desc = NodeDescription {
            hostname: host[..8].to_string(),
            platform: Some(Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            }),
            resources: Some(Resources {
                nano_cpus: 4_000_000_000,
                memory_bytes: 8 << 30,
                generic: vec![],
            }),
            ..Default::default()
        };
        let mut session = d
            .session(SessionRequest {
                description: Some(desc),
                session_id: String::new(),
            })
            .await?
            .into_inner();
        let first = session
            .message()
            .await?
            .ok_or_else(|| tonic::Status::aborted("no session"))?;
        let sid = first.session_id.clone();
        let mut assignments = d
            .assignments(AssignmentsRequest {
                session_id: sid.clone(),
            })
            .await?
            .into_inner();
        let mut hb = d.clone();
        let hb_sid = sid.clone();
        let beat = AbortOnDrop(tokio::spawn(async move {
            loop {
                match hb
                    .heartbeat(HeartbeatRequest {
                        session_id: hb_sid.clone(),
                    })
                    .await
                {
                    Ok(r) => {
                        let p = r.into_inner().period.unwrap().to_std().unwrap();
                        tokio::time::sleep(p / 2).await;
                    }
                    Err(_) => return,
                }
            }
        }));
        let result = async {
            while let Some(msg) = assignments.message().await? {
                if msg.r#type() == AssignmentsType::Complete {
                    secrets.lock().clear();
                }
                let mut updates = Vec::new();
                for c in msg.changes {
                    let remove = c.action() == AssignmentAction::Remove;
                    let Some(item) = c.assignment.and_then(|a| a.item) else {
                        continue;
                    };
                    match item {
                        assignment::Item::Task(t) if remove => {
                            running.lock().remove(&t.id);
                        }
                        assignment::Item::Task(t) => {
                            let image = t
                                .spec
                                .as_ref()
                                .and_then(|s| s.container.as_ref())
                                .map(|c| c.image.as_str())
                                .unwrap_or("");
                            // An image named "fail" cannot start.
                            let next = if t.desired_state() > TaskState::Running {
                                TaskState::Shutdown
                            } else if image == "fail" {
                                TaskState::Failed
                            } else {
                                TaskState::Running
                            };
                            if t.state() < next {
                                updates.push(TaskStatusUpdate {
                                    task_id: t.id.clone(),
                                    status: Some(TaskStatus {
                                        state: next.into(),
                                        message: "fake".into(),
                                        timestamp: Some(Timestamp::now()),
                                        ..Default::default()
                                    }),
                                });
                            }
                            running.lock().insert(t.id.clone(), t);
                        }
                        assignment::Item::Secret(s) if remove => {
                            secrets.lock().remove(&s.id);
                        }
                        assignment::Item::Secret(s) => {
                            secrets.lock().insert(s.id);
                        }
                        _ => {}
                    }
                }
                if !updates.is_empty() {
                    d.update_task_status(UpdateTaskStatusRequest {
                        session_id: sid.clone(),
                        updates,
                    })
                    .await?;
                }
            }
            Ok::<_, tonic::Status>(())
        }
        .await;
        drop(beat);
        result
    }

    /// Stops the agent abruptly (no more heartbeats).
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Aborts a task when dropped (so a killed agent's heartbeats stop too).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
