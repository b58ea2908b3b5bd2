//! Managers in one process (real mTLS gRPC on loopback) and fake agents
//! that speak the real dispatcher protocol.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a test harness module: each test file uses a different part"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::dispatcher_client::DispatcherClient;
use swarm_api::v1::*;
use swarm_manager::dispatcher::{DispatcherConfig, LEADER_ADDR_KEY};
use swarm_manager::{Manager, ManagerBuilder};
use swarm_pki::{JoinOptions, JoinToken, NodeChannelBuilder, NodeTls};
use swarm_raft::RaftConfig;
use tonic::transport::Channel;

pub mod cluster;
mod logs;
pub use logs::AgentLogs;

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

/// What the assignments stream delivered to an agent besides tasks.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Secrets held now (delivered and not removed since), with their data.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Configs held now, with their data.
    pub configs: BTreeMap<String, Vec<u8>>,
    /// Every secret id ever delivered.
    pub secrets_seen: BTreeSet<String>,
    /// Every config id ever delivered.
    pub configs_seen: BTreeSet<String>,
}

type Shared<T> = Arc<Mutex<T>>;

/// A fake agent: joins with a token, keeps a session with the leader
/// (following a refusal's leader address, or trying the next manager),
/// runs whatever it is assigned instantly (RUNNING; FAILED for the image
/// "fail"), stops what it is told to stop (SHUTDOWN), records the secrets
/// and configs it is given, and can stop heartbeating. With
/// [`FakeAgent::serve_logs`] it also serves log subscriptions.
pub struct FakeAgent {
    pub node_id: String,
    pub tls: NodeTls,
    task: tokio::task::JoinHandle<()>,
    logs_task: Option<tokio::task::JoinHandle<()>>,
    addrs: Vec<String>,
    /// Tasks as last assigned, by id.
    pub running: Shared<BTreeMap<String, Task>>,
    /// Secrets and configs delivered.
    pub delivered: Shared<Delivered>,
    /// Log lines of its tasks and the subscriptions it serves.
    pub logs: AgentLogs,
}

impl FakeAgent {
    pub async fn join(manager_addr: &str, token: &JoinToken) -> FakeAgent {
        FakeAgent::join_any(&[manager_addr.to_string()], token).await
    }

    /// Joins through the first manager; sessions go to whichever of
    /// `managers` leads.
    pub async fn join_any(managers: &[String], token: &JoinToken) -> FakeAgent {
        let enrollment = swarm_pki::join(&managers[0], token, &JoinOptions::default())
            .await
            .unwrap();
        let node_id = enrollment.credentials.identity().node_id.clone();
        let tls = NodeTls::new(enrollment).unwrap();
        FakeAgent::start_any(managers.to_vec(), tls, node_id)
    }

    pub fn channel(tls: &NodeTls, addr: &str) -> Channel {
        NodeChannelBuilder::new(tls.client_tls().unwrap())
            .connect_lazy(addr)
            .unwrap()
    }

    pub fn start(addr: &str, tls: NodeTls, node_id: String) -> FakeAgent {
        FakeAgent::start_any(vec![addr.to_string()], tls, node_id)
    }

    pub fn start_any(addrs: Vec<String>, tls: NodeTls, node_id: String) -> FakeAgent {
        let running: Shared<BTreeMap<String, Task>> = Arc::default();
        let delivered: Shared<Delivered> = Arc::default();
        let channels: Vec<(String, Channel)> = addrs
            .iter()
            .map(|a| (a.clone(), FakeAgent::channel(&tls, a)))
            .collect();
        let (r, d) = (running.clone(), delivered.clone());
        let host = node_id.clone();
        let task = tokio::spawn(async move {
            let mut at = 0;
            loop {
                let ended = FakeAgent::session(channels[at].1.clone(), &host, &r, &d).await;
                at = next_manager(&channels, at, ended.err());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        FakeAgent {
            node_id,
            tls,
            task,
            logs_task: None,
            addrs,
            running,
            delivered,
            logs: AgentLogs::new(),
        }
    }

    /// Serves log subscriptions from the first manager.
    pub fn serve_logs(&mut self) {
        let ch = FakeAgent::channel(&self.tls, &self.addrs[0]);
        self.logs_task = Some(self.logs.clone().serve(ch));
    }

    async fn session(
        ch: Channel,
        host: &str,
        running: &Shared<BTreeMap<String, Task>>,
        delivered: &Shared<Delivered>,
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
        // A refused heartbeat ends the session (the agent moves on).
        let beat = async {
            loop {
                let r = hb
                    .heartbeat(HeartbeatRequest {
                        session_id: sid.clone(),
                        sparse_answers: false,
                    })
                    .await?;
                let p = r.into_inner().period.unwrap().to_std().unwrap();
                tokio::time::sleep(p / 2).await;
            }
        };
        let work = async {
            while let Some(msg) = assignments.message().await? {
                if msg.r#type() == AssignmentsType::Complete {
                    let mut held = delivered.lock();
                    held.secrets.clear();
                    held.configs.clear();
                }
                let updates = apply(msg.changes, running, delivered);
                if !updates.is_empty() {
                    d.clone()
                        .update_task_status(UpdateTaskStatusRequest {
                            session_id: sid.clone(),
                            updates,
                        })
                        .await?;
                }
            }
            Ok::<_, tonic::Status>(())
        };
        tokio::select! {
            r = beat => r,
            r = work => r,
        }
    }

    /// Stops the agent abruptly (no more heartbeats, no more logs).
    pub fn kill(&self) {
        self.task.abort();
        if let Some(t) = &self.logs_task {
            t.abort();
        }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The manager to try next: the leader a refusal named, else the next one.
fn next_manager(managers: &[(String, Channel)], at: usize, err: Option<tonic::Status>) -> usize {
    let hint = err.as_ref().and_then(|s| {
        s.metadata()
            .get(LEADER_ADDR_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    hint.and_then(|h| managers.iter().position(|(a, _)| *a == h))
        .unwrap_or((at + 1) % managers.len())
}

/// Applies one assignments message; returns the status reports it calls for.
fn apply(
    changes: Vec<AssignmentChange>,
    running: &Shared<BTreeMap<String, Task>>,
    delivered: &Shared<Delivered>,
) -> Vec<TaskStatusUpdate> {
    let mut updates = Vec::new();
    for c in changes {
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
            assignment::Item::Secret(s) => {
                let mut d = delivered.lock();
                if remove {
                    d.secrets.remove(&s.id);
                } else {
                    d.secrets_seen.insert(s.id.clone());
                    let data = s.spec.map(|s| s.data).unwrap_or_default();
                    d.secrets.insert(s.id, data);
                }
            }
            assignment::Item::Config(c) => {
                let mut d = delivered.lock();
                if remove {
                    d.configs.remove(&c.id);
                } else {
                    d.configs_seen.insert(c.id.clone());
                    let data = c.spec.map(|s| s.data).unwrap_or_default();
                    d.configs.insert(c.id, data);
                }
            }
            _ => {}
        }
    }
    updates
}
