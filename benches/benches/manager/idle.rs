//! Scenario 3: manager CPU with many idle agents connected, heartbeating
//! at the default period (5 s, plus up to 0.5 s jitter).

use std::time::Duration;

use crate::cluster::Cluster;
use crate::cpu::CpuSample;
use crate::fleet::Fleet;
use crate::out;
use crate::report::{Better, Figure};

/// Measured window: two heartbeat periods.
const WINDOW: Duration = Duration::from_secs(10);

/// Connects `agents`, lets them settle, measures the manager's CPU.
pub async fn run(cluster: &Cluster, fleet: &mut Fleet, agents: usize) -> Vec<Figure> {
    fleet.grow_to(agents).await;
    // Registrations and full assignment sets are done once sessions are
    // open; leave a little for the last status writes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (hb0, cpu0) = (cluster.heartbeats(), CpuSample::now());
    tokio::time::sleep(WINDOW).await;
    let (hb1, cpu1) = (cluster.heartbeats(), CpuSample::now());
    let cpu = cpu1.since(&cpu0);
    let sessions = cluster.manager.dispatcher().sessions();
    let share = cpu.manager_cores() * 100.0;
    out(format!(
        "idle: {sessions} sessions, {:.0} heartbeats/s, manager {share:.2}% of a core; {}",
        (hb1 - hb0) as f64 / cpu.wall.as_secs_f64(),
        cpu.describe()
    ));
    vec![
        Figure::new(
            format!("manager CPU, {sessions} idle agents at 5 s heartbeats"),
            share,
            "% core",
            Better::Lower,
        )
        .target(10.0),
    ]
}
