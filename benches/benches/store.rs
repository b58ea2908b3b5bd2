//! swarm-store figures beside SwarmKit's go-memdb store, measured on a
//! 2-core VM like this one (issue: foundation). Run all sections with
//! `cargo bench -p swarm-benches --bench store`, or some with
//! `cargo bench -p swarm-benches --bench store -- create get`.

#![allow(clippy::unwrap_used, clippy::print_stdout, reason = "benchmark binary")]

use std::hint::black_box;
use std::time::Duration;

use swarm_api::v1::{Node, NodeDescription, Task};
use swarm_benches::{Report, median_of, per_op, ready, timed};
use swarm_store::{By, Store, StoreError};

const NODES: u64 = 10_000;
const TASKS: u64 = 100_000;
const SERVICES: u64 = 100;

/// Random ids as the cluster makes them (25 base-36 characters), the
/// same for every run, made before any timing starts.
fn ids(n: u64, seed: u64) -> Vec<String> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| swarm_api::id::new_id_with(&mut rng))
        .collect()
}

thread_local! {
    static NODE_IDS: Vec<String> = ids(NODES, 1);
    static TASK_IDS: Vec<String> = ids(TASKS, 2);
    static SERVICE_IDS: Vec<String> = ids(SERVICES, 3);
}

fn node_id(i: u64) -> String {
    NODE_IDS.with(|ids| ids[i as usize].clone())
}

fn node(i: u64) -> Node {
    Node {
        id: node_id(i),
        description: Some(NodeDescription {
            hostname: format!("host-{i}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn store_with_nodes() -> Store {
    let store = Store::new();
    for i in 0..NODES {
        ready(store.update(|tx| tx.create(node(i)).map(drop))).unwrap();
    }
    store
}

fn store_with_tasks() -> Store {
    let store = Store::new();
    ready(store.batch(|b| {
        for i in 0..TASKS {
            b.update(|tx| tx.create(task(i)).map(drop))?;
        }
        Ok::<_, StoreError>(())
    }))
    .unwrap();
    store
}

fn task(i: u64) -> Task {
    Task {
        id: TASK_IDS.with(|ids| ids[i as usize].clone()),
        service_id: SERVICE_IDS.with(|ids| ids[(i % SERVICES) as usize].clone()),
        slot: i / SERVICES + 1,
        node_id: node_id(i % NODES),
        ..Default::default()
    }
}

/// Runs a section unless filter arguments exclude it.
fn wanted(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

fn main() {
    // Make the ids before anything is timed.
    NODE_IDS.with(|_| ());
    TASK_IDS.with(|_| ());
    SERVICE_IDS.with(|_| ());
    let mut report = Report::new("swarm-store vs SwarmKit go-memdb (anchors: 2-core VM)");
    let us = Duration::from_micros;

    if wanted("create") {
        let t = median_of(3, || {
            let store = Store::new();
            per_op(NODES, |i| {
                ready(store.update(|tx| tx.create(node(i)).map(drop))).unwrap()
            })
        });
        report.row("create node (10k nodes, 1 per tx)", t, Some(us(32)), "/op");
    }

    let needs_nodes = ["update", "get", "find-all"].iter().any(|s| wanted(s));
    let store = if needs_nodes {
        store_with_nodes()
    } else {
        Store::new()
    };
    if wanted("update") {
        let t = median_of(3, || {
            per_op(NODES, |i| {
                ready(store.update(|tx| {
                    let mut n = (*tx.get::<Node>(&node_id((i * 7919) % NODES)).unwrap()).clone();
                    n.description.as_mut().unwrap().hostname = format!("renamed-{i}");
                    tx.update(n).map(drop)
                }))
                .unwrap()
            })
        });
        report.row("update one node per tx", t, Some(us(66)), "/tx");
        println!(
            "single-object update transactions/s: {:.0}",
            1.0 / t.as_secs_f64()
        );
    }
    if wanted("get") {
        let ids: Vec<String> = (0..NODES).map(node_id).collect();
        let t = median_of(5, || {
            per_op(1_000_000, |i| {
                black_box(store.view_with(|v| v.get::<Node>(&ids[(i % NODES) as usize])));
            })
        });
        report.row(
            "get node by id (view + get)",
            t,
            Some(Duration::from_nanos(2100)),
            "/op",
        );
    }
    if wanted("find-all") {
        let t = median_of(5, || {
            timed(|| {
                for _ in 0..50 {
                    let all = black_box(store.view().find::<Node>(By::All).unwrap());
                    assert_eq!(all.len(), NODES as usize);
                }
            }) / 50
        });
        report.row("find all nodes (10k)", t, Some(us(18_800)), "/op");
    }
    if wanted("batch") {
        let mut tasks = None;
        let t = timed(|| tasks = Some(store_with_tasks()));
        report.row("insert 100k tasks in a batch (total)", t, None, "");
        report.row("  per task", t / TASKS as u32, None, "/task");
        let tasks = tasks.unwrap();
        let services: Vec<String> = SERVICE_IDS.with(|ids| ids.clone());
        let t = median_of(5, || {
            let v = tasks.view();
            timed(|| {
                for s in &services {
                    let found = black_box(v.find::<Task>(By::ServiceId(s)).unwrap());
                    assert_eq!(found.len(), (TASKS / SERVICES) as usize);
                }
            }) / SERVICES as u32
        });
        report.row("find tasks by service (1k of 100k)", t, None, "/query");
    }

    report.print();
    println!("(times are this thread's CPU time; medians of several runs)");
}
