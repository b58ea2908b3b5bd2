//! swarm-manager figures beside SwarmKit's (issue 8, "Benchmarks"): one
//! manager with real raft (fsync on) in a temporary directory, and fake
//! agents speaking the real dispatcher protocol over loopback mutual TLS,
//! each with its own certificate from the manager's CA and its own
//! connection.
//!
//! Scenarios (all by default, or name some):
//! - `deploy`: service create → all tasks RUNNING, 1k replicas on 100
//!   agents and 10k replicas on 1k agents;
//! - `heartbeats`: heartbeats/s the dispatcher sustains per core, with
//!   unary `Heartbeat` calls and over `HeartbeatStream` (what agents use);
//! - `idle`: manager CPU with 10k idle agents at the 5 s period, both ways;
//! - `down`: time to mark 1,000 of 10k agents down once they go silent.
//!
//! ```text
//! cargo bench -p swarm-benches --bench manager
//! cargo bench -p swarm-benches --bench manager -- heartbeats
//! SWARM_BENCH_SCALE=0.1 cargo bench -p swarm-benches --bench manager   # a quick run
//! ```
//!
//! The manager runs on its own tokio runtime (threads `mgr-rt`, plus the
//! raft WAL thread); its CPU time is read per thread from /proc, apart from
//! the load generator's (threads `load-rt`), which shares the machine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    unreachable_pub,
    reason = "benchmark binary"
)]

#[path = "manager/agent.rs"]
mod agent;
#[path = "manager/cluster.rs"]
mod cluster;
#[path = "manager/cpu.rs"]
mod cpu;
#[path = "manager/deploy.rs"]
mod deploy;
#[path = "manager/down.rs"]
mod down;
#[path = "manager/fleet.rs"]
mod fleet;
#[path = "manager/heartbeats.rs"]
mod heartbeats;
#[path = "manager/idle.rs"]
mod idle;
#[path = "manager/join.rs"]
mod join;
#[path = "manager/remote.rs"]
mod remote;
#[path = "manager/report.rs"]
mod report;

use std::time::{Duration, Instant};

use swarm_manager::dispatcher::DispatcherConfig;
use tokio::runtime::Handle;

use crate::cluster::Cluster;
use crate::fleet::Fleet;
use crate::report::{Better, Figure};

/// Progress on stdout, with the time since the start.
pub fn out(line: impl AsRef<str>) {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed();
    println!("[{:6.1} s] {}", t.as_secs_f64(), line.as_ref());
}

/// The scenarios to run: all, or those named on the command line.
fn wanted(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// `SWARM_BENCH_SCALE` (default 1) scales agent and replica counts, for
/// quick runs.
fn scale() -> f64 {
    std::env::var("SWARM_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 1.0)
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()).round() as usize).max(1)
}

/// 10k connections each way need more descriptors than the usual limit.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = 65_536;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < want
        && setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_err()
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

async fn run(mgr: Handle) -> Vec<Figure> {
    let dispatcher = DispatcherConfig::default();
    let period = dispatcher.heartbeat_period;
    let (deploy, heartbeats, idle, down) = (
        wanted("deploy"),
        wanted("heartbeats"),
        wanted("idle"),
        wanted("down"),
    );
    let mut needed = 0;
    if deploy || heartbeats {
        needed = scaled(1_000);
    }
    if idle || down {
        needed = scaled(10_000);
    }
    let started = std::time::Instant::now();
    let mut cluster = Cluster::start(&mgr, dispatcher).await;
    let addr = cluster.manager.addr().to_string();
    out(format!(
        "manager {addr} started in {:.2} s (raft WAL fsync on, default 5 s heartbeats)",
        started.elapsed().as_secs_f64()
    ));

    // Agents past remote::LOCAL_MAX run in a child process, which joins
    // its own nodes.
    let needed = needed.min(remote::LOCAL_MAX);
    let parallel = 32;
    let (joined, took) = join::join_many(&addr, &cluster.worker_token(), needed, parallel).await;
    out(format!(
        "{needed} nodes joined through the CA in {:.1} s ({:.0}/s, {parallel} at a time)",
        took.as_secs_f64(),
        needed as f64 / took.as_secs_f64()
    ));
    let mut fleet = Fleet::new(&addr, joined).with_remote(&cluster.worker_token());
    let mut figures = vec![Figure::new(
        format!("join through the CA ({} nodes)", fleet.joined()),
        needed as f64 / took.as_secs_f64(),
        "nodes/s",
        Better::Higher,
    )];

    if deploy {
        figures.extend(
            deploy::run(
                &mut cluster,
                &mut fleet,
                scaled(100),
                scaled(1_000) as u64,
                Some(2.5),
                1.0,
            )
            .await,
        );
        figures.extend(
            deploy::run(
                &mut cluster,
                &mut fleet,
                scaled(1_000),
                scaled(10_000) as u64,
                None,
                5.0,
            )
            .await,
        );
    }
    if heartbeats {
        fleet.grow_to(scaled(1_000)).await;
        figures.extend(heartbeats::run(&cluster, &fleet, 1_000).await);
    }
    if idle {
        figures.extend(idle::run(&cluster, &mut fleet, scaled(10_000)).await);
    }
    if down {
        figures
            .extend(down::run(&cluster, &mut fleet, scaled(10_000), scaled(1_000), period).await);
    }
    let stats = &fleet.stats;
    out(format!(
        "agents: {} sessions opened, {} session errors, {} heartbeats answered, {} task updates sent",
        stats.sessions.load(std::sync::atomic::Ordering::Relaxed),
        stats
            .session_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        stats.heartbeats.load(std::sync::atomic::Ordering::Relaxed),
        stats
            .status_updates
            .load(std::sync::atomic::Ordering::Relaxed),
    ));
    drop(fleet);
    cluster.stop(&mgr).await;
    figures
}

fn main() {
    if remote::child_main() {
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    raise_fd_limit();
    out(format!(
        "swarm-manager bench: {} cores, load average {} at start{}",
        cpu::cores(),
        cpu::loadavg(),
        if scale() < 1.0 {
            format!(", SWARM_BENCH_SCALE={}", scale())
        } else {
            String::new()
        }
    ));
    out(
        "connections: one TCP + TLS 1.3 connection per agent, not shared (the dispatcher \
         knows a node by its connection's certificate); calls are HTTP/2 streams on it",
    );
    let mgr = cluster::manager_runtime();
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(cpu::LOAD_THREAD)
        .enable_all()
        .build()
        .expect("the load runtime");
    let figures = load.block_on(run(mgr.handle().clone()));
    let load_end = cpu::loadavg();
    report::print(
        "swarm-manager vs SwarmKit (one manager, raft fsync on, fake agents over loopback mTLS)",
        &figures,
    );
    println!(
        "machine: {} cores shared with other work; load average at the end {load_end}",
        cpu::cores()
    );
    load.shutdown_timeout(Duration::from_secs(2));
    mgr.shutdown_timeout(Duration::from_secs(2));
}
