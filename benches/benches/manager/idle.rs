//! Scenario 3: manager CPU with many idle agents connected, heartbeating
//! at the default period (5 s, plus up to 0.5 s jitter): first with unary
//! `Heartbeat` calls, then over one `HeartbeatStream` per agent (what
//! agents use).

use std::time::Duration;

use crate::cluster::Cluster;
use crate::cpu::CpuSample;
use crate::fleet::Fleet;
use crate::out;
use crate::report::{Better, Figure};

/// Measured window: two heartbeat periods.
const WINDOW: Duration = Duration::from_secs(10);
/// Agents switch transport at their next beat: within a period and its
/// jitter.
const SWITCH: Duration = Duration::from_millis(6_000);

/// Connects `agents`, lets them settle, measures the manager's CPU with
/// each heartbeat transport.
pub async fn run(cluster: &Cluster, fleet: &mut Fleet, agents: usize) -> Vec<Figure> {
    fleet.set_unary(true);
    fleet.grow_to(agents).await;
    // Registrations and full assignment sets are done once sessions are
    // open; leave a little for the last status writes, and for agents
    // already connected to switch to unary calls.
    tokio::time::sleep(SWITCH).await;
    let unary = measure(cluster, "unary").await;
    fleet.set_unary(false);
    tokio::time::sleep(SWITCH).await;
    let stream = measure(cluster, "stream").await;
    let sessions = cluster.manager.dispatcher().sessions();
    vec![
        Figure::new(
            format!("manager CPU, {sessions} idle agents at 5 s heartbeats (stream)"),
            stream,
            "% core",
            Better::Lower,
        )
        .target(10.0),
        Figure::new(
            format!("  manager CPU, {sessions} idle agents at 5 s heartbeats (unary)"),
            unary,
            "% core",
            Better::Lower,
        ),
    ]
}

/// The manager's share of a core over [`WINDOW`], in percent.
async fn measure(cluster: &Cluster, transport: &str) -> f64 {
    let (hb0, cpu0) = (cluster.heartbeats(), CpuSample::now());
    tokio::time::sleep(WINDOW).await;
    let (hb1, cpu1) = (cluster.heartbeats(), CpuSample::now());
    let cpu = cpu1.since(&cpu0);
    let sessions = cluster.manager.dispatcher().sessions();
    let share = cpu.manager_cores() * 100.0;
    out(format!(
        "idle ({transport}): {sessions} sessions, {:.0} heartbeats/s, manager {share:.2}% of a \
         core; {}",
        (hb1 - hb0) as f64 / cpu.wall.as_secs_f64(),
        cpu.describe()
    ));
    share
}
