//! The simulator replays the shipped workload against both policies and
//! its report reflects what each policy did.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use swarm_scheduler::sim::{self, Event};

fn shipped_workload() -> Vec<Event> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/workloads/zones.jsonl"
    ))
    .unwrap();
    sim::parse_workload(&text).unwrap()
}

#[test]
fn shipped_workload_compares_spread_and_binpack() {
    let w = shipped_workload();
    let reports = sim::compare(&w, &["spread", "binpack"]).unwrap();
    let (spread, binpack) = (&reports[0], &reports[1]);
    assert_eq!(spread.policy, "spread");
    assert_eq!(binpack.policy, "binpack");
    for r in &reports {
        assert_eq!(r.nodes, 10);
        assert_eq!(r.failures_injected, 3);
        // ml wants 5 GPUs and the cluster has 4: one ml task always waits,
        // with SwarmKit's reason.
        let gpu_reason = r
            .pending_reasons
            .keys()
            .find(|k| k.starts_with("no suitable node (insufficient resources on"));
        assert!(gpu_reason.is_some(), "{:?}", r.pending_reasons);
        assert!(r.placed > 60, "{}: {} placed", r.policy, r.placed);
    }
    // Spread spreads web over the zones; binpack leaves nodes empty.
    let zone = spread
        .balance
        .iter()
        .find(|b| b.descriptor == "node.labels.zone")
        .unwrap();
    assert!(zone.spread() <= 2, "{zone:?}");
    assert!(
        spread.max_tasks_per_node - spread.min_tasks_per_node
            < binpack.max_tasks_per_node - binpack.min_tasks_per_node
    );
    // The large tasks at the end only fit where binpack kept free CPU
    // together.
    assert!(
        binpack.pending < spread.pending,
        "{} vs {}",
        binpack.pending,
        spread.pending
    );
    assert!(binpack.fragmentation_pct < spread.fragmentation_pct);
    let table = sim::render(&reports);
    assert!(table.contains("tasks placed"));
    assert!(table.contains("node.labels.zone: max-min tasks"));
    assert!(table.contains("tasks per node.labels.rack"));
}

#[test]
fn drained_nodes_end_empty_and_global_services_cover_usable_nodes() {
    let w = sim::parse_workload(
        r#"
{"op":"add_node","id":"a","cpus":4,"memory":"4GiB"}
{"op":"add_node","id":"b","cpus":4,"memory":"4GiB"}
{"op":"add_node","id":"c","cpus":4,"memory":"4GiB","labels":{"tier":"edge"}}
{"op":"create_service","name":"agent","global":true,"cpus":0.5,"constraints":["node.labels.tier!=edge"]}
{"op":"create_service","name":"web","replicas":6,"cpus":1}
{"op":"drain_node","id":"a"}
"#,
    )
    .unwrap();
    let mut s = sim::Simulation::new(sim::scheduler_for("spread").unwrap());
    for e in &w {
        s.apply(e);
    }
    let on = |node: &str, service: &str| {
        s.tasks()
            .values()
            .filter(|t| t.node_id == node && t.service_id == service)
            .count()
    };
    assert_eq!(on("a", "web") + on("a", "agent"), 0);
    assert_eq!(on("b", "agent"), 1);
    assert_eq!(on("c", "agent"), 0);
    assert_eq!(on("b", "web") + on("c", "web"), 6);
    assert_eq!(on("b", "web"), 3);
}

#[test]
fn unknown_policy_is_an_error() {
    let err = sim::compare(&[], &["fifo"]).unwrap_err();
    assert!(err.contains("unknown policy \"fifo\""), "{err}");
}

#[test]
fn spread_stays_even_per_service_through_churn_when_there_is_room() {
    let mut lines = Vec::new();
    for i in 0..12 {
        lines.push(format!(
            r#"{{"op":"add_node","id":"n{i}","cpus":64,"memory":"256GiB","labels":{{"zone":"z{}"}}}}"#,
            i % 3
        ));
    }
    for s in 0..4 {
        lines.push(format!(
            r#"{{"op":"create_service","name":"s{s}","replicas":{},"cpus":1,"preferences":["node.labels.zone"]}}"#,
            5 + 4 * s
        ));
    }
    lines.push(r#"{"op":"fail_tasks","service":"s1","count":4}"#.into());
    lines.push(r#"{"op":"scale_service","name":"s2","replicas":31}"#.into());
    lines.push(r#"{"op":"drain_node","id":"n4"}"#.into());
    lines.push(r#"{"op":"scale_service","name":"s3","replicas":7}"#.into());
    lines.push(r#"{"op":"scale_service","name":"s3","replicas":20}"#.into());
    let w = sim::parse_workload(&lines.join("\n")).unwrap();
    let r = sim::run(&w, sim::scheduler_for("spread").unwrap());
    assert_eq!(r.pending, 0);
    let zone = &r.balance[0];
    assert!(zone.worst_service_spread <= 1, "{zone:?}");
}
