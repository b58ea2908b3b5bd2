//! Scenario 2: heartbeats per second the dispatcher sustains, per core of
//! manager CPU, over mutual TLS.
//!
//! Up to 1,000 connected agents each send heartbeats back to back on their
//! own connection (one in flight per agent, as an agent does), with their
//! real session ids, for a fixed time, through the real agent's heartbeat
//! client: once as unary `Heartbeat` calls, then as messages of one
//! `HeartbeatStream` per agent (what agents use). The figure is heartbeats
//! the dispatcher accepted (its own counter) divided by the CPU time the
//! manager's threads used meanwhile, so the load generator's CPU, which
//! shares the two cores, is not counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use swarm_agent::heartbeat::{Heartbeats, Transport};

use crate::cluster::Cluster;
use crate::cpu::{CpuDelta, CpuSample};
use crate::fleet::Fleet;
use crate::out;
use crate::report::{Better, Figure};

/// How long the load runs, per transport.
const DURATION: Duration = Duration::from_secs(6);
/// Of which the first part warms up.
const WARMUP: Duration = Duration::from_secs(1);

/// What one transport achieved.
struct Run {
    senders: usize,
    beats: u64,
    errors: u64,
    cpu: CpuDelta,
}

impl Run {
    fn per_core(&self) -> f64 {
        self.beats as f64 / self.cpu.manager.as_secs_f64().max(1e-9)
    }

    fn wall(&self) -> f64 {
        self.beats as f64 / self.cpu.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs the scenario with up to `drivers` agents sending, over both
/// transports.
pub async fn run(cluster: &Cluster, fleet: &Fleet, drivers: usize) -> Vec<Figure> {
    let unary = measure(cluster, fleet, drivers, Transport::Unary).await;
    let stream = measure(cluster, fleet, drivers, Transport::Stream).await;
    out(format!(
        "heartbeats: the stream costs {:.2}x less manager CPU per beat than unary calls",
        stream.per_core() / unary.per_core().max(1e-9)
    ));
    let mut figures = Vec::new();
    for (name, r) in [("stream", &stream), ("unary", &unary)] {
        let per_core = Figure::new(
            format!(
                "heartbeats/s per manager core ({name}, mTLS, {} connections)",
                r.senders
            ),
            r.per_core(),
            "/s",
            Better::Higher,
        )
        .anchor(2_000.0);
        // The target is for what agents use: the stream.
        figures.push(if name == "stream" {
            per_core.target(50_000.0)
        } else {
            per_core
        });
        figures.push(Figure::new(
            format!("  heartbeats/s wall ({name}; 2 shared cores, load generator included)"),
            r.wall(),
            "/s",
            Better::Higher,
        ));
    }
    figures
}

async fn measure(cluster: &Cluster, fleet: &Fleet, drivers: usize, transport: Transport) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for agent in fleet.agents.iter().take(drivers) {
        let Some(session_id) = agent.session() else {
            continue;
        };
        let mut beats = Heartbeats::with_transport(agent.client(), session_id, transport);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if beats.beat().await.is_err() {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            errors
        }));
    }
    let senders = tasks.len();
    tokio::time::sleep(WARMUP).await;
    let (hb0, cpu0) = (cluster.heartbeats(), CpuSample::now());
    tokio::time::sleep(DURATION - WARMUP).await;
    let (hb1, cpu1) = (cluster.heartbeats(), CpuSample::now());
    stop.store(true, Ordering::Relaxed);
    let mut errors = 0;
    for t in tasks {
        errors += t.await.unwrap_or(0);
    }
    let run = Run {
        senders,
        beats: hb1 - hb0,
        errors,
        cpu: cpu1.since(&cpu0),
    };
    out(format!(
        "heartbeats ({transport:?}): {senders} agents sending (one in flight each, own mTLS \
         connection): {} accepted, {:.0}/s wall, {:.0}/s per manager core, {:.1} µs manager \
         CPU each; {} errors; {}",
        run.beats,
        run.wall(),
        run.per_core(),
        1e6 / run.per_core().max(1e-9),
        run.errors,
        run.cpu.describe()
    ));
    run
}
