//! Properties over random clusters and workloads: reservations are never
//! over-committed, constraints, max replicas and host ports are never
//! violated, the same input gives the same placement (whatever order the
//! nodes arrived in), and unconstrained spread keeps per-node counts within
//! one.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use proptest::prelude::*;
use swarm_api::v1::{Protocol, Task, TaskState};
use swarm_scheduler::{Binpack, ClusterScheduler, Pass, Scheduler};

#[derive(Debug, Clone)]
struct NodeGen {
    cpus: i64,
    mem: i64,
    zone: Option<u8>,
    ready: bool,
}

#[derive(Debug, Clone)]
struct ServiceGen {
    cpus: i64,
    mem: i64,
    zone_eq: Option<u8>,
    zone_ne: Option<u8>,
    spread: bool,
    max_replicas: u64,
    host_port: bool,
}

fn node_gen() -> impl Strategy<Value = NodeGen> {
    (
        1i64..8,
        1i64..8,
        proptest::option::of(0u8..3),
        proptest::bool::weighted(0.9),
    )
        .prop_map(|(cpus, mem, zone, ready)| NodeGen {
            cpus,
            mem,
            zone,
            ready,
        })
}

fn service_gen() -> impl Strategy<Value = ServiceGen> {
    (
        0i64..3,
        0i64..3,
        proptest::option::of(0u8..3),
        proptest::option::of(0u8..3),
        any::<bool>(),
        0u64..3,
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(cpus, mem, zone_eq, zone_ne, spread, max_replicas, host_port)| ServiceGen {
                cpus,
                mem,
                zone_eq,
                zone_ne,
                spread,
                max_replicas,
                host_port,
            },
        )
}

fn build_node(i: usize, g: &NodeGen) -> N {
    let mut n = node(&format!("node-{i:03}")).res(g.cpus, g.mem);
    if let Some(z) = g.zone {
        n = n.label("zone", &format!("z{z}"));
    }
    if !g.ready {
        n = n.state(swarm_api::v1::NodeState::Down);
    }
    n
}

fn build_tasks(si: usize, g: &ServiceGen, batch: usize, n: usize) -> Vec<Task> {
    let mut t = task("x", &format!("svc{si}")).cpus(g.cpus).mem_gib(g.mem);
    if let Some(z) = g.zone_eq {
        t = t.constraint(&format!("node.labels.zone==z{z}"));
    }
    if let Some(z) = g.zone_ne {
        t = t.constraint(&format!("node.labels.zone!=z{z}"));
    }
    if g.spread {
        t = t.spread("node.labels.zone");
    }
    if g.max_replicas > 0 {
        t = t.max_replicas(g.max_replicas);
    }
    if g.host_port {
        t = t.host_port(8000 + si as u32, Protocol::Tcp);
    }
    t.times(&format!("s{si}-b{batch}"), n)
}

/// Runs batches through a scheduler, committing each pass; returns the
/// passes and the tasks by id.
fn drive(
    s: &mut dyn Scheduler,
    nodes: &[N],
    batches: &[Vec<Task>],
    finish_every: usize,
) -> (Vec<Pass>, HashMap<String, Task>) {
    let mut tasks: HashMap<String, Task> = HashMap::new();
    let mut passes = Vec::new();
    for n in nodes {
        s.upsert_node(&n.0);
    }
    for (b, batch) in batches.iter().enumerate() {
        for t in batch {
            tasks.insert(t.id.clone(), t.clone());
            s.upsert_task(t, t0());
        }
        let pass = s.schedule(t0());
        commit(s, &pass, &mut tasks);
        // Now and then a placed task finishes and lets go of its node.
        if finish_every > 0 && b % finish_every == 0 {
            let mut done: Vec<String> = tasks
                .values()
                .filter(|t| !t.node_id.is_empty())
                .map(|t| t.id.clone())
                .collect();
            done.sort();
            if let Some(id) = done.first() {
                let mut t = tasks.remove(id).unwrap();
                t.status.as_mut().unwrap().state = TaskState::Complete as i32;
                s.upsert_task(&t, t0());
            }
        }
        passes.push(pass);
    }
    (passes, tasks)
}

fn check_invariants(
    nodes: &[(N, NodeGen)],
    services: &[ServiceGen],
    tasks: &HashMap<String, Task>,
) {
    let by_id: HashMap<&str, &NodeGen> = nodes.iter().map(|(n, g)| (n.0.id.as_str(), g)).collect();
    let mut used: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut per_service_node: HashMap<(&str, &str), u64> = HashMap::new();
    let mut ports: HashMap<(&str, u32), u32> = HashMap::new();
    for t in tasks.values().filter(|t| !t.node_id.is_empty()) {
        let g = by_id[t.node_id.as_str()];
        let si: usize = t.service_id[3..].parse().unwrap();
        let sg = &services[si];
        assert!(g.ready, "{} placed on a node that is down", t.id);
        let u = used.entry(t.node_id.as_str()).or_default();
        u.0 += sg.cpus;
        u.1 += sg.mem;
        assert!(
            u.0 <= g.cpus && u.1 <= g.mem,
            "node {} over-committed",
            t.node_id
        );
        let zone = g.zone.map(|z| format!("z{z}")).unwrap_or_default();
        if let Some(z) = sg.zone_eq {
            assert_eq!(zone, format!("z{z}"), "{} breaks zone=={z}", t.id);
        }
        if let Some(z) = sg.zone_ne {
            assert_ne!(zone, format!("z{z}"), "{} breaks zone!={z}", t.id);
        }
        let c = per_service_node
            .entry((t.service_id.as_str(), t.node_id.as_str()))
            .or_default();
        *c += 1;
        if sg.max_replicas > 0 {
            assert!(
                *c <= sg.max_replicas,
                "max replicas broken on {}",
                t.node_id
            );
        }
        if sg.host_port {
            let p = ports
                .entry((t.node_id.as_str(), 8000 + si as u32))
                .or_default();
            *p += 1;
            assert_eq!(*p, 1, "host port published twice on {}", t.node_id);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn placements_respect_every_filter(
        node_gens in proptest::collection::vec(node_gen(), 1..12),
        services in proptest::collection::vec(service_gen(), 1..4),
        batches in proptest::collection::vec((0usize..4, 1usize..12), 1..6),
        binpack in any::<bool>(),
    ) {
        let nodes: Vec<(N, NodeGen)> =
            node_gens.iter().enumerate().map(|(i, g)| (build_node(i, g), g.clone())).collect();
        let plain: Vec<N> = nodes.iter().map(|(n, _)| n.clone()).collect();
        let batch_tasks: Vec<Vec<Task>> = batches
            .iter()
            .enumerate()
            .map(|(b, (si, n))| {
                let si = si % services.len();
                build_tasks(si, &services[si], b, *n)
            })
            .collect();
        let (_, tasks) = if binpack {
            drive(&mut ClusterScheduler::builder().policy(Binpack).build(), &plain, &batch_tasks, 2)
        } else {
            drive(&mut ClusterScheduler::new(), &plain, &batch_tasks, 2)
        };
        check_invariants(&nodes, &services, &tasks);
    }

    #[test]
    fn same_input_same_placement_whatever_the_node_order(
        node_gens in proptest::collection::vec(node_gen(), 1..12),
        services in proptest::collection::vec(service_gen(), 1..4),
        batches in proptest::collection::vec((0usize..4, 1usize..12), 1..5),
        rotate in 0usize..12,
    ) {
        let nodes: Vec<N> = node_gens.iter().enumerate().map(|(i, g)| build_node(i, g)).collect();
        let batch_tasks: Vec<Vec<Task>> = batches
            .iter()
            .enumerate()
            .map(|(b, (si, n))| {
                let si = si % services.len();
                build_tasks(si, &services[si], b, *n)
            })
            .collect();
        let (a, _) = drive(&mut ClusterScheduler::new(), &nodes, &batch_tasks, 0);
        let (b, _) = drive(&mut ClusterScheduler::new(), &nodes, &batch_tasks, 0);
        prop_assert_eq!(&a, &b);
        let mut rotated = nodes.clone();
        rotated.rotate_left(rotate % nodes.len());
        rotated.reverse();
        let (c, _) = drive(&mut ClusterScheduler::new(), &rotated, &batch_tasks, 0);
        prop_assert_eq!(&a, &c);
    }

    #[test]
    fn unconstrained_spread_keeps_counts_within_one(
        nodes in 1usize..40,
        batches in proptest::collection::vec(1usize..60, 1..4),
    ) {
        let nodes: Vec<N> = (0..nodes).map(|i| node(&format!("n{i:02}"))).collect();
        let batch_tasks: Vec<Vec<Task>> = batches
            .iter()
            .enumerate()
            .map(|(b, n)| task("x", "web").times(&format!("b{b}"), *n))
            .collect();
        let (_, tasks) = drive(&mut ClusterScheduler::new(), &nodes, &batch_tasks, 0);
        let mut per: BTreeMap<&str, usize> = nodes.iter().map(|n| (n.0.id.as_str(), 0)).collect();
        for t in tasks.values() {
            *per.get_mut(t.node_id.as_str()).unwrap() += 1;
        }
        let max = per.values().max().unwrap();
        let min = per.values().min().unwrap();
        prop_assert!(max - min <= 1, "{:?}", per);
        prop_assert_eq!(per.values().sum::<usize>(), batches.iter().sum::<usize>());
    }

    #[test]
    fn constraint_parser_never_panics_and_round_trips(s in "\\PC{0,40}") {
        if let Ok(c) = swarm_scheduler::constraint::parse(&s) {
            let again = swarm_scheduler::constraint::parse(&c.to_string()).unwrap();
            prop_assert_eq!(again, c);
        }
    }
}
