//! Scenario 2: heartbeats per second the dispatcher sustains, per core of
//! manager CPU, over mutual TLS.
//!
//! Up to 1,000 connected agents each send heartbeats back to back on their
//! own connection (one in flight per agent, as an agent does), with their
//! real session ids, for a fixed time. The figure is heartbeats the
//! dispatcher accepted (its own counter) divided by the CPU time the
//! manager's threads used meanwhile, so the load generator's CPU, which
//! shares the two cores, is not counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use swarm_api::v1::HeartbeatRequest;

use crate::cluster::Cluster;
use crate::cpu::CpuSample;
use crate::fleet::Fleet;
use crate::out;
use crate::report::{Better, Figure};

/// How long the load runs.
const DURATION: Duration = Duration::from_secs(6);
/// Of which the first part warms up.
const WARMUP: Duration = Duration::from_secs(1);

/// Runs the scenario with up to `drivers` agents sending.
pub async fn run(cluster: &Cluster, fleet: &Fleet, drivers: usize) -> Vec<Figure> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for agent in fleet.agents.iter().take(drivers) {
        let Some(session_id) = agent.session() else {
            continue;
        };
        let mut client = agent.client();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .heartbeat(HeartbeatRequest {
                        session_id: session_id.clone(),
                    })
                    .await;
                if r.is_err() {
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
    let cpu = cpu1.since(&cpu0);
    let beats = hb1 - hb0;
    let wall_rate = beats as f64 / cpu.wall.as_secs_f64();
    let per_core = beats as f64 / cpu.manager.as_secs_f64().max(1e-9);
    out(format!(
        "heartbeats: {senders} agents sending (one in flight each, own mTLS connection): \
         {beats} accepted, {wall_rate:.0}/s wall, {per_core:.0}/s per manager core, \
         {:.1} µs manager CPU each; {errors} errors; {}",
        1e6 / per_core,
        cpu.describe()
    ));
    vec![
        Figure::new(
            format!("heartbeats/s per manager core (mTLS, {senders} connections)"),
            per_core,
            "/s",
            Better::Higher,
        )
        .anchor(2_000.0)
        .target(50_000.0),
        Figure::new(
            "  heartbeats/s wall (2 shared cores, load generator included)",
            wall_rate,
            "/s",
            Better::Higher,
        ),
    ]
}
