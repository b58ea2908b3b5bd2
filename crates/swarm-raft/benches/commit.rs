//! Commit throughput and latency of the replicated store (issue 3).
//!
//! Three managers in this process, each with its own write-ahead log
//! (fsync on) and its own tonic server on a loopback port; writers run
//! real store transactions (update one `Config` object, 256 bytes of
//! data) on the leader, through the raft [`Proposer`](swarm_store::Proposer),
//! and each write is timed from the call until it returns committed and
//! applied. Printed beside etcd's figures and the issue's targets.
//!
//! ```text
//! cargo bench -p swarm-raft --bench commit
//! SWARM_RAFT_BENCH_SECS=20 cargo bench -p swarm-raft --bench commit   # longer levels
//! SWARM_RAFT_BENCH_DIR=/somewhere cargo bench -p swarm-raft --bench commit
//! SWARM_RAFT_BENCH_LEVELS=1000 cargo bench -p swarm-raft --bench commit  # some levels only
//! SWARM_RAFT_BENCH_MERGE=1 cargo bench -p swarm-raft --bench commit      # no merging
//! SWARM_RAFT_BENCH_IN_FLIGHT=8 cargo bench -p swarm-raft --bench commit  # entries in flight
//! ```
//!
//! The data lives under the system temp dir unless `SWARM_RAFT_BENCH_DIR`
//! says otherwise: it must be a real disk (a tmpfs makes fsync free).
//!
//! Columns: commits/s and latency percentiles over the measured window;
//! errors (writes that failed); store transactions committed per
//! `fdatasync` of the leader's log (the proposer merges waiting
//! transactions into one entry, and appends made during a sync of the
//! leader's log share the next one); log entries per `fdatasync` on each member (a follower syncs
//! every entry of a replication message at once); CPU time of the whole
//! process per commit (on a shared machine, a figure that other load
//! disturbs less than commits/s). The cost of one `fdatasync` on this
//! disk is measured before and after, and the load average printed: the
//! machines these run on are shared, and the figures move with them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark binary"
)]

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use swarm_api::v1::{Annotations, Config, ConfigSpec};
use swarm_raft::{ProposalStats, RaftConfig, RaftNode, RaftNodeBuilder, TcpConnector, WalStats};
use swarm_store::{Store, StoreError};
use tokio::net::TcpListener;

/// Bytes of data each write carries.
const VALUE_BYTES: usize = 256;
/// Writer counts measured.
const LEVELS: [usize; 3] = [1, 64, 1_000];
/// Time every level runs before it is measured.
const WARMUP: Duration = Duration::from_secs(1);

/// etcd, 3 members with 8 vCPUs each (etcd's published benchmark).
const ETCD_1_CLIENT_PER_S: f64 = 583.0;
const ETCD_1_CLIENT_LATENCY: Duration = Duration::from_micros(1_600);
const ETCD_1000_CLIENTS_PER_S: (f64, f64) = (44_000.0, 50_000.0);
/// The issue's targets.
const TARGET_1_WRITER_PER_S: f64 = 2_000.0;
const TARGET_1_WRITER_P99: Duration = Duration::from_millis(5);
const TARGET_1000_WRITERS_PER_S: f64 = 25_000.0;
const TARGET_ENTRIES_PER_FSYNC: f64 = 32.0;

struct Manager {
    node: RaftNode,
    store: Store,
    server: tokio::task::JoinHandle<()>,
}

async fn start_manager(id: u64, dir: PathBuf, config: &RaftConfig) -> Manager {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    start_on(id, listener, addr, dir, config).await
}

async fn start_on(
    id: u64,
    listener: TcpListener,
    addr: String,
    dir: PathBuf,
    config: &RaftConfig,
) -> Manager {
    let store = Store::new();
    let node = RaftNodeBuilder::new(
        id,
        addr,
        dir,
        store.clone(),
        Arc::new(TcpConnector::default()),
    )
    .config(config.clone())
    .start()
    .await
    .unwrap();
    store.set_proposer(Some(Box::new(node.proposer())));
    let router = tonic::transport::Server::builder()
        .add_service(node.raft_service())
        .add_service(node.membership_service());
    // Replies are small writes: without TCP_NODELAY, Nagle's algorithm
    // holds them back behind the peer's delayed acknowledgements.
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    });
    let server = tokio::spawn(async move {
        let _ = router.serve_with_incoming(incoming).await;
    });
    Manager {
        node,
        store,
        server,
    }
}

/// Bootstraps one manager and joins two more; returns them leader first.
async fn cluster(root: &Path, config: &RaftConfig) -> Vec<Manager> {
    let first = start_manager(1, root.join("m1"), config).await;
    first.node.bootstrap().await.unwrap();
    first
        .node
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    let mut managers = vec![first];
    for n in 2..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (id, _) = managers[0].node.join(&addr).await.unwrap();
        let m = start_on(id, listener, addr, root.join(format!("m{n}")), config).await;
        managers.push(m);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = managers[0].node.status().unwrap();
        if s.voters.len() == 3 && s.learners.is_empty() && !s.changing {
            break;
        }
        assert!(Instant::now() < deadline, "members not promoted: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    managers
}

/// One write: a store transaction replacing this writer's object.
async fn put(store: &Store, key: &str, value: &[u8]) -> Result<(), StoreError> {
    store
        .update(|tx| {
            let obj = Config {
                id: key.into(),
                spec: Some(ConfigSpec {
                    annotations: Some(Annotations {
                        name: key.into(),
                        ..Default::default()
                    }),
                    data: value.to_vec(),
                }),
                ..Default::default()
            };
            match tx.get::<Config>(key) {
                Some(old) => tx.update(Config {
                    meta: old.meta,
                    ..obj
                }),
                None => tx.create(obj),
            }
            .map(drop)
        })
        .await
}

/// What one level measured.
struct Level {
    writers: usize,
    commits_per_s: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
    /// Per manager, leader first: entries and fsyncs during the window.
    wal: Vec<WalStats>,
    /// The leader's proposer during the window.
    proposals: ProposalStats,
    /// CPU time this process used during the window (all three managers
    /// and the writers), if known.
    cpu: Option<Duration>,
}

fn delta(a: WalStats, b: WalStats) -> WalStats {
    WalStats {
        entries: b.entries - a.entries,
        syncs: b.syncs - a.syncs,
    }
}

async fn run_level(managers: &[Manager], writers: usize, window: Duration) -> Level {
    let store = managers[0].store.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let key = format!("bench-{w:04}");
                let value = vec![b'x'; VALUE_BYTES];
                // (completion time since start, latency), and errors.
                let mut done: Vec<(Duration, Duration)> = Vec::new();
                let mut errors = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match put(&store, &key, &value).await {
                        Ok(()) => done.push((start.elapsed(), t.elapsed())),
                        Err(_) => errors += 1,
                    }
                }
                (done, errors)
            })
        })
        .collect();
    tokio::time::sleep(WARMUP).await;
    let before: Vec<WalStats> = managers.iter().map(|m| m.node.wal_stats()).collect();
    let proposals_before = managers[0].node.proposal_stats();
    let cpu_before = process_cpu();
    tokio::time::sleep(window).await;
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(b, a)| b.saturating_sub(a));
    let after: Vec<WalStats> = managers.iter().map(|m| m.node.wal_stats()).collect();
    let proposals_after = managers[0].node.proposal_stats();
    stop.store(true, Ordering::Relaxed);
    let (from, to) = (WARMUP, WARMUP + window);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (done, e) = t.await.unwrap();
        errors += e;
        latencies.extend(
            done.into_iter()
                .filter(|(at, _)| *at >= from && *at < to)
                .map(|(_, l)| l),
        );
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Level {
        writers,
        commits_per_s: latencies.len() as f64 / window.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
        wal: before
            .into_iter()
            .zip(after)
            .map(|(a, b)| delta(a, b))
            .collect(),
        proposals: ProposalStats {
            transactions: proposals_after.transactions - proposals_before.transactions,
            entries: proposals_after.entries - proposals_before.entries,
            splits: proposals_after.splits - proposals_before.splits,
        },
        cpu,
    }
}

/// CPU time (user and system) this process has used, from
/// `/proc/self/stat` (in clock ticks, assumed 100 per second).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The cost of one `fdatasync` after writing a small record in `dir`:
/// appending to a file (it grows: the size is written too), and writing
/// into preallocated space (as the log does). Medians and 99th
/// percentiles.
fn fdatasync_cost(dir: &Path) -> [(Duration, Duration); 2] {
    let probe = |preallocated: bool| {
        let path = dir.join("fsync-probe");
        let mut f = std::fs::File::create(&path).unwrap();
        if preallocated {
            f.write_all(&vec![0u8; 1 << 20]).unwrap();
            f.sync_all().unwrap();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
        }
        let record = [7u8; VALUE_BYTES + 64];
        let mut times: Vec<Duration> = (0..300)
            .map(|_| {
                f.write_all(&record).unwrap();
                let t = Instant::now();
                f.sync_data().unwrap();
                t.elapsed()
            })
            .collect();
        std::fs::remove_file(&path).ok();
        times.sort();
        (times[times.len() / 2], times[times.len() * 99 / 100])
    };
    [probe(false), probe(true)]
}

/// A duration in the unit that reads best.
fn us(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn per_fsync(s: WalStats) -> f64 {
    s.entries as f64 / s.syncs.max(1) as f64
}

/// The writer counts to measure: `SWARM_RAFT_BENCH_LEVELS` (comma
/// separated), or all of [`LEVELS`].
fn levels_wanted() -> Vec<usize> {
    std::env::var("SWARM_RAFT_BENCH_LEVELS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|l: &Vec<usize>| !l.is_empty())
        .unwrap_or_else(|| LEVELS.to_vec())
}

/// Store transactions committed per `fdatasync` of the leader's log.
fn writes_per_fsync(l: &Level) -> f64 {
    l.proposals.transactions as f64 / l.wal[0].syncs.max(1) as f64
}

fn main() {
    let secs: u64 = std::env::var("SWARM_RAFT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let window = Duration::from_secs(secs.max(1));
    let base = std::env::var_os("SWARM_RAFT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    // SWARM_RAFT_BENCH_MERGE=1 turns merging of transactions off (for a
    // before/after comparison).
    let merge_limit: Option<usize> = std::env::var("SWARM_RAFT_BENCH_MERGE")
        .ok()
        .and_then(|s| s.parse().ok());
    // SWARM_RAFT_BENCH_IN_FLIGHT=n: entries the proposer keeps in flight.
    let in_flight: Option<usize> = std::env::var("SWARM_RAFT_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|s| s.parse().ok());
    let root = base.join(format!("swarm-raft-commit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();

    let [append_sync, prealloc_sync] = fdatasync_cost(&root);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let levels = rt.block_on(async {
        // SwarmKit's timings, except a quicker heartbeat so that members
        // are promoted quickly at start (a heartbeat carries no entries).
        let mut config = RaftConfig {
            heartbeat: Duration::from_millis(100),
            ..RaftConfig::default()
        };
        if let Some(n) = merge_limit {
            config.max_merged_proposals = n;
        }
        if let Some(n) = in_flight {
            config.proposals_in_flight = n;
        }
        let managers = cluster(&root, &config).await;
        let mut levels = Vec::new();
        for writers in levels_wanted() {
            levels.push(run_level(&managers, writers, window).await);
        }
        for m in &managers {
            m.server.abort();
            m.node.shutdown().await;
        }
        levels
    });
    let [append_after, prealloc_after] = fdatasync_cost(&root);
    std::fs::remove_dir_all(&root).ok();

    println!("\n## raft commits: 3 managers, loopback gRPC, fsync on, {VALUE_BYTES}-byte writes\n");
    println!(
        "data dir: {} ; {}s per level after {}s warm-up; cores: {}",
        root.display(),
        window.as_secs(),
        WARMUP.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("one fdatasync here (the issue's figure for this machine kind: 110-150 µs), p50/p99:");
    for (when, append, prealloc) in [
        ("before the run", append_sync, prealloc_sync),
        ("after the run ", append_after, prealloc_after),
    ] {
        println!(
            "  {when}: after an append {} / {}; into preallocated space (as the log writes) {} / {}",
            us(append.0),
            us(append.1),
            us(prealloc.0),
            us(prealloc.1),
        );
    }
    println!(
        "  load average at the end: {}\n",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if let Some(n) = merge_limit {
        println!("(at most {n} transactions merged per log entry: SWARM_RAFT_BENCH_MERGE)\n");
    }
    if let Some(n) = in_flight {
        println!("({n} entries in flight: SWARM_RAFT_BENCH_IN_FLIGHT)\n");
    }
    println!(
        "| writers | commits/s | p50 | p99 | errors | writes/fsync (leader) | log entries/fsync (leader, followers) | CPU/commit | etcd anchor | vs etcd | target | vs target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for l in &levels {
        let fsync = l
            .wal
            .iter()
            .map(|s| format!("{:.1}", per_fsync(*s)))
            .collect::<Vec<_>>()
            .join(", ");
        let (anchor, vs_anchor, target, vs_target) = match l.writers {
            1 => (
                format!(
                    "{ETCD_1_CLIENT_PER_S:.0}/s at {}",
                    us(ETCD_1_CLIENT_LATENCY)
                ),
                format!(
                    "{:.2}x; p50 latency {:.2}x lower",
                    l.commits_per_s / ETCD_1_CLIENT_PER_S,
                    ETCD_1_CLIENT_LATENCY.as_secs_f64() / l.p50.as_secs_f64().max(1e-9)
                ),
                format!(
                    ">= {TARGET_1_WRITER_PER_S:.0}/s, p99 < {}",
                    us(TARGET_1_WRITER_P99)
                ),
                format!(
                    "{:.2}x; p99 {:.2}x of limit",
                    l.commits_per_s / TARGET_1_WRITER_PER_S,
                    l.p99.as_secs_f64() / TARGET_1_WRITER_P99.as_secs_f64()
                ),
            ),
            1_000 => (
                format!(
                    "{:.0}-{:.0}k/s",
                    ETCD_1000_CLIENTS_PER_S.0 / 1e3,
                    ETCD_1000_CLIENTS_PER_S.1 / 1e3
                ),
                format!(
                    "{:.2}-{:.2}x",
                    l.commits_per_s / ETCD_1000_CLIENTS_PER_S.1,
                    l.commits_per_s / ETCD_1000_CLIENTS_PER_S.0
                ),
                format!(">= {TARGET_1000_WRITERS_PER_S:.0}/s"),
                format!("{:.2}x", l.commits_per_s / TARGET_1000_WRITERS_PER_S),
            ),
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let cpu = l
            .cpu
            .filter(|_| l.commits_per_s > 0.0)
            .map(|c| us(c.div_f64(l.commits_per_s * window.as_secs_f64())))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {} | {:.0} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            l.writers,
            l.commits_per_s,
            us(l.p50),
            us(l.p99),
            l.errors,
            writes_per_fsync(l),
            fsync,
            cpu,
            anchor,
            vs_anchor,
            target,
            vs_target
        );
    }
    println!(
        "\nCPU/commit: CPU time of the whole process (3 managers, their gRPC, the writers) \
         per commit; with {} cores to itself the process could not go past \
         cores / (CPU/commit) commits/s.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Some(sat) = levels.last() {
        let leader = writes_per_fsync(sat);
        println!(
            "\nwrites per fsync at saturation ({} writers, leader): {leader:.1} (target >= {TARGET_ENTRIES_PER_FSYNC:.0}: {:.2}x); \
             log entries per fsync on the followers: {:.1}, {:.1}; merged entries split after a refusal: {}",
            sat.writers,
            leader / TARGET_ENTRIES_PER_FSYNC,
            per_fsync(sat.wal[1]),
            per_fsync(sat.wal[2]),
            sat.proposals.splits
        );
    }
}
