//! Scenario 1: service create → every task RUNNING.
//!
//! The clock starts before `CreateService` on the control API and stops
//! when the store holds every task of the service in RUNNING: orchestrator
//! (tasks created), allocator (PENDING), scheduler loop (ASSIGNED, debounced
//! 50 ms), dispatcher (assignments streamed to the agents), the agents'
//! RUNNING reports and the dispatcher's batched status write (every 100 ms),
//! each write committed through raft with an fsync.

use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::cpu::CpuSample;
use crate::fleet::Fleet;
use crate::out;
use crate::report::{Better, Figure};

/// One deployment: `replicas` tasks on `agents` agents.
pub async fn run(
    cluster: &mut Cluster,
    fleet: &mut Fleet,
    agents: usize,
    replicas: u64,
    anchor: Option<f64>,
    target: f64,
) -> Vec<Figure> {
    fleet.grow_to(agents).await;
    // Let the registrations' writes and the scheduler's node updates settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let name = format!("deploy-{replicas}");
    let before = CpuSample::now();
    let started = Instant::now();
    let id = cluster.create_service(&name, replicas).await;
    let mut half = None;
    // SWARM_BENCH_TRACE=1 prints the tasks' states every 250 ms.
    let step = if std::env::var_os("SWARM_BENCH_TRACE").is_some() {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut next_progress = step;
    let limit = Duration::from_secs(120);
    loop {
        let running = cluster.running(&id) as u64;
        if half.is_none() && running * 2 >= replicas {
            half = Some(started.elapsed());
        }
        if running == replicas {
            break;
        }
        if started.elapsed() > limit {
            out(format!(
                "only {running} of {replicas} tasks RUNNING after {limit:?}: {}",
                cluster.task_states(&id)
            ));
            break;
        }
        if started.elapsed() > next_progress {
            out(format!(
                "  {:?}: {}",
                started.elapsed(),
                cluster.task_states(&id)
            ));
            next_progress += step;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let cpu = CpuSample::now().since(&before);
    out(format!(
        "{replicas} replicas on {agents} agents: all RUNNING after {:.3} s (half after {:.3} s); {}",
        took.as_secs_f64(),
        half.unwrap_or(took).as_secs_f64(),
        cpu.describe()
    ));
    let mut figure = Figure::new(
        format!("create → all RUNNING, {replicas} replicas on {agents} agents"),
        took.as_secs_f64(),
        "s",
        Better::Lower,
    )
    .target(target);
    if let Some(a) = anchor {
        figure = figure.anchor(a);
    }
    let cpu_figure = Figure::new(
        format!("  manager CPU for it ({replicas} replicas)"),
        cpu.manager.as_secs_f64(),
        "cpu-s",
        Better::Lower,
    );
    let removed = cluster.remove_service(&id, Duration::from_secs(60)).await;
    if !removed {
        out(format!("{name}: tasks still live 60 s after removal"));
    }
    vec![figure, cpu_figure]
}
