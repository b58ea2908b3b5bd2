//! Prometheus metrics (text exposition format) over plain HTTP:
//! raft state, store object counts, tasks by state, scheduler passes,
//! dispatcher sessions and heartbeats.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use swarm_api::EnumName;
use swarm_api::v1::{Cluster, Config, Network, Node, Secret, Service, Task, TaskState};
use swarm_raft::{RaftNode, ServerState};
use swarm_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::dispatcher::Dispatcher;
use crate::error::ManagerError;

/// Counters updated by the manager's components.
#[derive(Debug, Default)]
pub struct Counters {
    /// Heartbeats received.
    pub heartbeats: AtomicU64,
    /// Scheduling passes run.
    pub scheduler_passes: AtomicU64,
    /// Total time spent in scheduling passes, in microseconds.
    pub scheduler_micros: AtomicU64,
    /// Tasks assigned by the scheduler.
    pub tasks_assigned: AtomicU64,
}

/// Renders every metric.
pub fn render(store: &Store, raft: &RaftNode, dispatcher: &Dispatcher) -> String {
    let mut out = String::new();
    let view = store.view();
    if let Ok(s) = raft.status() {
        let _ = writeln!(
            out,
            "# HELP swarm_raft_is_leader 1 when this manager is the raft leader."
        );
        let _ = writeln!(out, "# TYPE swarm_raft_is_leader gauge");
        let _ = writeln!(
            out,
            "swarm_raft_is_leader {}",
            u8::from(s.state == ServerState::Leader)
        );
        let _ = writeln!(
            out,
            "# TYPE swarm_raft_term gauge\nswarm_raft_term {}",
            s.term
        );
        let _ = writeln!(
            out,
            "# TYPE swarm_raft_last_log_index gauge\nswarm_raft_last_log_index {}",
            s.last_log_index.unwrap_or(0)
        );
        let _ = writeln!(
            out,
            "# TYPE swarm_raft_last_applied gauge\nswarm_raft_last_applied {}",
            s.last_applied.unwrap_or(0)
        );
        let _ = writeln!(
            out,
            "# TYPE swarm_raft_voters gauge\nswarm_raft_voters {}",
            s.voters.len()
        );
        let wal = raft.wal_stats();
        let _ = writeln!(
            out,
            "# TYPE swarm_raft_wal_entries_total counter\nswarm_raft_wal_entries_total {}",
            wal.entries
        );
        let _ = writeln!(
            out,
            "# TYPE swarm_raft_wal_syncs_total counter\nswarm_raft_wal_syncs_total {}",
            wal.syncs
        );
    }
    let _ = writeln!(
        out,
        "# HELP swarm_store_objects Objects in the store, by kind."
    );
    let _ = writeln!(out, "# TYPE swarm_store_objects gauge");
    for (kind, n) in [
        ("node", view.count::<Node>()),
        ("service", view.count::<Service>()),
        ("task", view.count::<Task>()),
        ("network", view.count::<Network>()),
        ("cluster", view.count::<Cluster>()),
        ("secret", view.count::<Secret>()),
        ("config", view.count::<Config>()),
    ] {
        let _ = writeln!(out, "swarm_store_objects{{kind=\"{kind}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP swarm_tasks Tasks by observed state.");
    let _ = writeln!(out, "# TYPE swarm_tasks gauge");
    let mut counts = std::collections::BTreeMap::new();
    for t in view.all::<Task>() {
        *counts.entry(t.state().short_name()).or_insert(0u64) += 1;
    }
    for s in TaskState::ALL {
        let _ = writeln!(
            out,
            "swarm_tasks{{state=\"{}\"}} {}",
            s.short_name(),
            counts.get(s.short_name()).unwrap_or(&0)
        );
    }
    let c = dispatcher.counters();
    let _ = writeln!(
        out,
        "# TYPE swarm_dispatcher_sessions gauge\nswarm_dispatcher_sessions {}",
        dispatcher.sessions()
    );
    let _ = writeln!(
        out,
        "# TYPE swarm_dispatcher_heartbeats_total counter\nswarm_dispatcher_heartbeats_total {}",
        c.heartbeats.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE swarm_scheduler_passes_total counter\nswarm_scheduler_passes_total {}",
        c.scheduler_passes.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE swarm_scheduler_seconds_total counter\nswarm_scheduler_seconds_total {}",
        c.scheduler_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "# TYPE swarm_scheduler_assigned_total counter\nswarm_scheduler_assigned_total {}",
        c.tasks_assigned.load(Ordering::Relaxed)
    );
    out
}

/// Serves `/metrics` on `addr` (any path answers the metrics).
pub async fn serve(
    addr: SocketAddr,
    store: Store,
    raft: RaftNode,
    dispatcher: Dispatcher,
) -> Result<JoinHandle<()>, ManagerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ManagerError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let shared = Arc::new((store, raft, dispatcher));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                // Read the request head; its content does not matter.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                        .await;
                let body = render(&shared.0, &shared.1, &shared.2);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    }))
}
