//! A lightweight fake agent: the real dispatcher protocol (session,
//! heartbeats, assignments, task status) over its own mutual-TLS
//! connection, one tokio task per agent and no executor. Every assigned
//! task is reported RUNNING at once (one status update, where a real agent
//! would send ACCEPTED..RUNNING), every task asked to stop is reported
//! SHUTDOWN.
//!
//! The dispatcher knows a caller by the certificate of its connection, so
//! agents cannot share connections: each has its own tonic `Channel` (one
//! TCP + TLS connection, HTTP/2 streams for the calls).
//!
//! Heartbeats go through the real agent's client
//! ([`swarm_agent::heartbeat::Heartbeats`]): one long-lived stream per
//! session, or unary calls while [`Stats::unary`] is set (to compare).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use swarm_agent::heartbeat::{Heartbeats, Transport};
use swarm_api::v1::dispatcher_client::DispatcherClient;
use swarm_api::v1::*;
use swarm_pki::{NodeChannelBuilder, NodeTls};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;

/// Counters shared by all agents.
#[derive(Debug, Default)]
pub struct Stats {
    /// Sessions opened.
    pub sessions: AtomicU64,
    /// Sessions that ended with an error (the agent reconnects).
    pub session_errors: AtomicU64,
    /// Heartbeats answered.
    pub heartbeats: AtomicU64,
    /// Task status updates sent (one per task change).
    pub status_updates: AtomicU64,
    /// Heartbeat with unary calls instead of the stream the real agent
    /// uses; agents switch at their next beat.
    pub unary: AtomicBool,
}

impl Stats {
    /// The heartbeat transport agents use now.
    pub fn transport(&self) -> Transport {
        if self.unary.load(Ordering::Relaxed) {
            Transport::Unary
        } else {
            Transport::Stream
        }
    }
}

/// What the agent task and its owner share.
struct Shared {
    /// The current session id (empty between sessions).
    session: Mutex<String>,
    /// When set, the agent stops heartbeating (it hangs, its streams stay
    /// open) and does not reconnect.
    silent: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// One fake agent.
pub struct Agent {
    /// Its node id (from its certificate).
    pub node_id: String,
    client: DispatcherClient<Channel>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Agent {
    /// Starts an agent with `tls` against the manager at `addr` (connects
    /// at once and keeps a session, reconnecting after errors).
    pub fn start(addr: &str, tls: &NodeTls, node_id: String, stats: Arc<Stats>) -> Agent {
        // The client TLS comes from a certificate just issued by the real
        // CA; failing to build it is a bench setup error.
        let client_tls = tls
            .client_tls()
            .expect("client TLS from a fresh enrollment");
        let channel = NodeChannelBuilder::new(client_tls)
            .connect_timeout(Duration::from_secs(30))
            .connect_lazy(addr)
            .expect("a valid manager address");
        let client = DispatcherClient::new(channel);
        let shared = Arc::new(Shared {
            session: Mutex::new(String::new()),
            silent: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        let task = tokio::spawn(run(client.clone(), node_id.clone(), shared.clone(), stats));
        Agent {
            node_id,
            client,
            shared,
            task,
        }
    }

    /// The current session id, once the session is open.
    pub fn session(&self) -> Option<String> {
        let s = self.shared.session.lock();
        (!s.is_empty()).then(|| s.clone())
    }

    /// A client on this agent's connection (for extra load).
    pub fn client(&self) -> DispatcherClient<Channel> {
        self.client.clone()
    }

    /// Stops heartbeating, keeping the connection: a hung agent.
    pub fn go_silent(&self) {
        self.shared.silent.store(true, Ordering::Relaxed);
    }

    /// The last session error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    client: DispatcherClient<Channel>,
    node_id: String,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
) {
    loop {
        let result = session(client.clone(), &node_id, &shared, &stats).await;
        shared.session.lock().clear();
        if shared.silent.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = result {
            stats.session_errors.fetch_add(1, Ordering::Relaxed);
            *shared.last_error.lock() = Some(e.to_string());
        }
        // Spread reconnections out, as agents do.
        let wait = Duration::from_millis(500 + rand::random::<u64>() % 1000);
        tokio::time::sleep(wait).await;
    }
}

fn description(node_id: &str) -> NodeDescription {
    NodeDescription {
        hostname: format!("bench-{}", &node_id[..node_id.len().min(8)]),
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
    }
}

/// One session: open it, then heartbeat on the period the manager asks
/// for and answer assignments, until a stream ends or a call fails.
async fn session(
    mut client: DispatcherClient<Channel>,
    node_id: &str,
    shared: &Shared,
    stats: &Stats,
) -> Result<(), Status> {
    let mut session = client
        .session(SessionRequest {
            description: Some(description(node_id)),
            session_id: String::new(),
        })
        .await?
        .into_inner();
    let first = session
        .message()
        .await?
        .ok_or_else(|| Status::aborted("session stream ended before its first message"))?;
    let sid = first.session_id;
    let mut assignments = client
        .assignments(AssignmentsRequest {
            session_id: sid.clone(),
        })
        .await?
        .into_inner();
    *shared.session.lock() = sid.clone();
    stats.sessions.fetch_add(1, Ordering::Relaxed);
    let mut beats = Heartbeats::with_transport(client.clone(), sid.clone(), stats.transport());
    let mut next_beat = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_beat) => {
                if shared.silent.load(Ordering::Relaxed) {
                    next_beat = Instant::now() + Duration::from_secs(3600);
                    continue;
                }
                if beats.transport() != stats.transport() {
                    beats = Heartbeats::with_transport(client.clone(), sid.clone(), stats.transport());
                }
                let period = beats.beat().await?;
                stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                next_beat = Instant::now() + period;
            }
            msg = assignments.message() => {
                let msg = msg?.ok_or_else(|| Status::aborted("assignments stream ended"))?;
                let updates = answer(msg);
                if !updates.is_empty() {
                    let n = updates.len() as u64;
                    client
                        .update_task_status(UpdateTaskStatusRequest {
                            session_id: sid.clone(),
                            updates,
                        })
                        .await?;
                    stats.status_updates.fetch_add(n, Ordering::Relaxed);
                }
            }
            msg = session.message() => {
                // Node and manager updates need no answer; the end of the
                // stream ends the session.
                msg?.ok_or_else(|| Status::aborted("session stream ended"))?;
            }
        }
    }
}

/// The status updates an assignments message calls for.
fn answer(msg: AssignmentsMessage) -> Vec<TaskStatusUpdate> {
    let mut updates = Vec::new();
    for c in msg.changes {
        if c.action() == AssignmentAction::Remove {
            continue;
        }
        let Some(assignment::Item::Task(t)) = c.assignment.and_then(|a| a.item) else {
            continue;
        };
        let next = if t.desired_state() > TaskState::Running {
            TaskState::Shutdown
        } else {
            TaskState::Running
        };
        if t.state() < next {
            updates.push(TaskStatusUpdate {
                task_id: t.id,
                status: Some(TaskStatus {
                    state: next.into(),
                    message: "bench".into(),
                    timestamp: Some(Timestamp::now()),
                    ..Default::default()
                }),
            });
        }
    }
    updates
}
