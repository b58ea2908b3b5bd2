//! Where tasks go: ranking, spread over one and two label levels with and
//! without resource limits, failure underweighting, host ports, max
//! replicas, generic resources, and the incremental contract (commit,
//! undo, retry when the cluster changes).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::*;
use swarm_api::v1::generic_resource::Resource;
use swarm_api::v1::{Protocol, TaskState};
use swarm_scheduler::{
    Binpack, Candidate, ClusterScheduler, Filter, Policy, Scheduler, TaskRequirements,
};

fn counts(pass: &swarm_scheduler::Pass) -> Vec<usize> {
    per_node(pass).into_values().collect()
}

#[test]
fn unconstrained_spread_evens_out_per_node_counts() {
    let mut s = ClusterScheduler::new();
    let nodes: Vec<N> = (0..5).map(|i| node(&format!("n{i}"))).collect();
    let pass = run(&mut s, &nodes, &task("t", "web").times("web", 12));
    let c = counts(&pass);
    assert_eq!(c.iter().sum::<usize>(), 12);
    assert_eq!(
        c.iter().max().unwrap() - c.iter().min().unwrap(),
        1,
        "{c:?}"
    );
}

#[test]
fn existing_tasks_of_the_service_count_then_total_tasks_break_ties() {
    let mut s = ClusterScheduler::new();
    let nodes = vec![node("a"), node("b"), node("c")];
    let mut running: Vec<_> = (0..3)
        .map(|i| {
            task(&format!("old{i}"), "web")
                .on("a", TaskState::Running)
                .0
        })
        .collect();
    // b carries two tasks of another service: c is preferred over b.
    running.push(task("x1", "other").on("b", TaskState::Running).0);
    running.push(task("x2", "other").on("b", TaskState::Running).0);
    run(&mut s, &nodes, &running);
    let pass = run(&mut s, &[], &task("t", "web").times("new", 4));
    let m = per_node(&pass);
    // Tasks of web end at a=3, b=2, c=2: c fills first (fewer tasks in
    // total), a gets nothing.
    assert_eq!(m.get("a"), None);
    assert_eq!(m.get("b"), Some(&2));
    assert_eq!(m.get("c"), Some(&2));
    let mut s2 = ClusterScheduler::new();
    run(&mut s2, &nodes, &running);
    let one = run(&mut s2, &[], &task("t", "web").times("one", 1));
    assert_eq!(one.assignments[0].node_id, "c");
}

fn zone_count(
    pass: &swarm_scheduler::Pass,
    zones: &HashMap<&str, &str>,
) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in &pass.assignments {
        *m.entry(zones[a.node_id.as_str()].to_string()).or_default() += 1;
    }
    m
}

#[test]
fn spread_over_one_label_divides_evenly_between_values() {
    let nodes = vec![
        node("a1").label("zone", "a"),
        node("a2").label("zone", "a"),
        node("a3").label("zone", "a"),
        node("b1").label("zone", "b"),
        node("c1").label("zone", "c"),
    ];
    let zones: HashMap<&str, &str> = [
        ("a1", "a"),
        ("a2", "a"),
        ("a3", "a"),
        ("b1", "b"),
        ("c1", "c"),
    ]
    .into();
    let mut s = ClusterScheduler::new();
    let pass = run(
        &mut s,
        &nodes,
        &task("t", "web").spread("node.labels.zone").times("w", 9),
    );
    assert_eq!(
        zone_count(&pass, &zones),
        [("a".into(), 3), ("b".into(), 3), ("c".into(), 3)].into()
    );
    // Inside zone a, the three nodes get one each.
    let m = per_node(&pass);
    assert_eq!((m["a1"], m["a2"], m["a3"], m["b1"]), (1, 1, 1, 3));
}

#[test]
fn spread_takes_existing_tasks_into_account() {
    let nodes = vec![node("a1").label("zone", "a"), node("b1").label("zone", "b")];
    let zones: HashMap<&str, &str> = [("a1", "a"), ("b1", "b")].into();
    let mut s = ClusterScheduler::new();
    let old: Vec<_> = task("t", "web")
        .spread("node.labels.zone")
        .on("a1", TaskState::Running)
        .times("old", 4);
    run(&mut s, &nodes, &old);
    let pass = run(
        &mut s,
        &[],
        &task("t", "web").spread("node.labels.zone").times("new", 6),
    );
    // 4 + 6 = 10 tasks: 5 per zone.
    assert_eq!(
        zone_count(&pass, &zones),
        [("a".into(), 1), ("b".into(), 5)].into()
    );
}

#[test]
fn nodes_without_the_label_form_their_own_branch() {
    let nodes = vec![
        node("a1").label("zone", "a"),
        node("b1").label("zone", "b"),
        node("x1"),
        node("x2"),
    ];
    let mut s = ClusterScheduler::new();
    let pass = run(
        &mut s,
        &nodes,
        &task("t", "web").spread("node.labels.zone").times("w", 6),
    );
    let m = per_node(&pass);
    assert_eq!(m["a1"], 2);
    assert_eq!(m["b1"], 2);
    assert_eq!(m["x1"] + m["x2"], 2);
}

#[test]
fn spread_over_two_levels() {
    // zone a: racks r1 (2 nodes) and r2 (1 node); zone b: rack r1 (1 node).
    let nodes = vec![
        node("a-r1-1").label("zone", "a").label("rack", "r1"),
        node("a-r1-2").label("zone", "a").label("rack", "r1"),
        node("a-r2-1").label("zone", "a").label("rack", "r2"),
        node("b-r1-1").label("zone", "b").label("rack", "r1"),
    ];
    let mut s = ClusterScheduler::new();
    let t = task("t", "web")
        .spread("node.labels.zone")
        .spread("node.labels.rack");
    let pass = run(&mut s, &nodes, &t.times("w", 8));
    let m = per_node(&pass);
    // 4 per zone; in zone a, 2 per rack; in rack a/r1, 1 per node.
    assert_eq!(m["b-r1-1"], 4);
    assert_eq!(m["a-r2-1"], 2);
    assert_eq!(m["a-r1-1"], 1);
    assert_eq!(m["a-r1-2"], 1);
}

#[test]
fn engine_labels_spread_too() {
    let nodes = vec![
        node("a").engine_label("disk", "ssd"),
        node("b").engine_label("disk", "ssd"),
        node("c").engine_label("disk", "hdd"),
    ];
    let mut s = ClusterScheduler::new();
    let pass = run(
        &mut s,
        &nodes,
        &task("t", "web").spread("engine.labels.disk").times("w", 4),
    );
    let m = per_node(&pass);
    assert_eq!(m["c"], 2);
    assert_eq!(m["a"] + m["b"], 2);
}

#[test]
fn a_branch_that_cannot_take_its_share_gives_it_to_the_others() {
    let nodes = vec![
        node("a1").label("zone", "a").res(1, 4),
        node("b1").label("zone", "b").res(8, 32),
        node("c1").label("zone", "c").res(8, 32),
    ];
    let mut s = ClusterScheduler::new();
    let t = task("t", "web").cpus(1).spread("node.labels.zone");
    let pass = run(&mut s, &nodes, &t.times("w", 9));
    assert!(pass.unplaced.is_empty());
    let m = per_node(&pass);
    assert_eq!(m["a1"], 1);
    assert_eq!(m["b1"], 4);
    assert_eq!(m["c1"], 4);
}

#[test]
fn two_levels_with_resource_limits_and_a_full_cluster() {
    let nodes = vec![
        node("a-r1").label("zone", "a").label("rack", "1").res(2, 8),
        node("a-r2").label("zone", "a").label("rack", "2").res(1, 8),
        node("b-r1").label("zone", "b").label("rack", "1").res(4, 8),
    ];
    let mut s = ClusterScheduler::new();
    let t = task("t", "web")
        .cpus(1)
        .spread("node.labels.zone")
        .spread("node.labels.rack");
    let pass = run(&mut s, &nodes, &t.times("w", 9));
    let m = per_node(&pass);
    assert_eq!((m["a-r1"], m["a-r2"], m["b-r1"]), (2, 1, 4));
    assert_eq!(pass.unplaced.len(), 2);
    assert_eq!(
        pass.unplaced[0].reason,
        "no suitable node (insufficient resources on 3 nodes)"
    );
}

#[test]
fn failing_nodes_are_underweighted() {
    let nodes = vec![node("a"), node("b"), node("c")];
    let mut s = ClusterScheduler::new();
    run(&mut s, &nodes, &[]);
    // Five failures of web (version 1) on a within five minutes.
    for i in 0..5 {
        let mut t = task(&format!("f{i}"), "web").on("a", TaskState::Running).0;
        s.upsert_task(&t, t0());
        t.status.as_mut().unwrap().state = TaskState::Failed as i32;
        s.upsert_task(&t, t0() + Duration::from_secs(10 * i));
    }
    // b and c already run two tasks each of web: a would otherwise win.
    let busy: Vec<_> = ["b", "c"]
        .iter()
        .flat_map(|n| {
            (0..2).map(move |i| task(&format!("r{n}{i}"), "web").on(n, TaskState::Running).0)
        })
        .collect();
    run(&mut s, &[], &busy);
    let now = t0() + Duration::from_secs(60);
    for t in task("t", "web").times("new", 2) {
        s.upsert_task(&t, now);
    }
    let pass = s.schedule(now);
    assert_eq!(per_node(&pass).get("a"), None, "{:?}", pass.assignments);
    assert_eq!(s.recent_failures("web", 1, "a", now), 5);
    assert_eq!(s.recent_failures("web", 2, "a", now), 0);
    assert_eq!(
        s.recent_failures("web", 1, "a", now + Duration::from_secs(300)),
        0
    );

    // Another spec version of the service is not affected.
    let mut s2 = ClusterScheduler::new();
    run(&mut s2, &nodes, &[]);
    for i in 0..5 {
        let mut t = task(&format!("f{i}"), "web").on("a", TaskState::Running).0;
        s2.upsert_task(&t, t0());
        t.status.as_mut().unwrap().state = TaskState::Rejected as i32;
        s2.upsert_task(&t, t0());
    }
    run(&mut s2, &[], &busy);
    s2.upsert_task(&task("v2", "web").version(2).0, now);
    assert_eq!(s2.schedule(now).assignments[0].node_id, "a");

    // Four failures are not enough; and failures age out after 5 minutes.
    for (failures, at, avoided) in [(4u64, 60u64, false), (5, 60, true), (5, 400, false)] {
        let mut s3 = ClusterScheduler::new();
        run(&mut s3, &nodes, &[]);
        for i in 0..failures {
            let mut t = task(&format!("f{i}"), "web").on("a", TaskState::Running).0;
            s3.upsert_task(&t, t0());
            t.status.as_mut().unwrap().state = TaskState::Failed as i32;
            s3.upsert_task(&t, t0() + Duration::from_secs(i));
        }
        run(&mut s3, &[], &busy);
        let now = t0() + Duration::from_secs(at);
        s3.upsert_task(&task("n", "web").0, now);
        let pass = s3.schedule(now);
        assert_eq!(
            pass.assignments[0].node_id != "a",
            avoided,
            "{failures} failures, {at}s later"
        );
    }
}

#[test]
fn host_ports_one_task_per_node() {
    let nodes = vec![node("a"), node("b"), node("c")];
    let mut s = ClusterScheduler::new();
    let t = task("t", "edge").host_port(80, Protocol::Tcp);
    let pass = run(&mut s, &nodes, &t.times("e", 4));
    assert_eq!(counts(&pass), vec![1, 1, 1]);
    assert_eq!(pass.unplaced.len(), 1);
    assert_eq!(
        pass.unplaced[0].reason,
        "no suitable node (host-mode port already in use on 3 nodes)"
    );
}

#[test]
fn max_replicas_caps_tasks_per_node() {
    let nodes = vec![node("a"), node("b")];
    let mut s = ClusterScheduler::new();
    let pass = run(
        &mut s,
        &nodes,
        &task("t", "web").max_replicas(2).times("w", 5),
    );
    assert_eq!(counts(&pass), vec![2, 2]);
    assert_eq!(
        pass.unplaced[0].reason,
        "no suitable node (max replicas per node limit exceed)"
    );
}

#[test]
fn named_generic_resources_are_assigned_and_returned() {
    let nodes = vec![
        node("gpu")
            .res(8, 8)
            .named("gpu", "G0")
            .named("gpu", "G1")
            .discrete("ssd", 3),
    ];
    let mut s = ClusterScheduler::new();
    let t = task("t", "ml").generic("gpu", 1).generic("ssd", 1);
    let mut tasks: HashMap<String, _> = t
        .times("m", 3)
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    let all: Vec<_> = tasks.values().cloned().collect();
    let pass = run(&mut s, &nodes, &all);
    assert_eq!(pass.assignments.len(), 2);
    let names: Vec<String> = pass
        .assignments
        .iter()
        .map(|a| match &a.assigned_generic_resources[0].resource {
            Some(Resource::Named(n)) => n.value.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, vec!["G0", "G1"]);
    assert!(matches!(
        &pass.assignments[0].assigned_generic_resources[1].resource,
        Some(Resource::Discrete(d)) if d.kind == "ssd" && d.value == 1
    ));
    assert_eq!(
        pass.unplaced[0].reason,
        "no suitable node (insufficient resources on 1 node)"
    );
    commit(&mut s, &pass, &mut tasks);
    // The task holding G0 ends: the pending one gets G0.
    let holder = pass.assignments[0].task_id.clone();
    let mut done = tasks[&holder].clone();
    done.status.as_mut().unwrap().state = TaskState::Complete as i32;
    s.upsert_task(&done, t0());
    let pass = s.schedule(t0());
    assert_eq!(pass.assignments.len(), 1);
    assert!(matches!(
        &pass.assignments[0].assigned_generic_resources[0].resource,
        Some(Resource::Named(n)) if n.value == "G0"
    ));
}

#[test]
fn undo_releases_the_booking_and_requeues() {
    let nodes = vec![node("a").res(1, 1)];
    let mut s = ClusterScheduler::new();
    let pass = run(&mut s, &nodes, &task("t", "web").cpus(1).times("w", 2));
    assert_eq!(pass.assignments.len(), 1);
    let placed = pass.assignments[0].clone();
    // The node is full.
    assert_eq!(s.node("a").unwrap().resources().available_nano_cpus(), 0);
    assert!(s.undo(&placed));
    assert!(!s.undo(&placed), "a second undo is refused");
    assert_eq!(s.node("a").unwrap().resources().available_nano_cpus(), CPU);
    // The undone task queues again behind the one already waiting, which
    // now gets the room.
    let again = s.schedule(t0());
    assert_eq!(again.assignments.len(), 1);
    assert_eq!(again.assignments[0].task_id, "w-0001");
    assert_eq!(again.unplaced.len(), 1);
    assert_eq!(again.unplaced[0].task_id, placed.task_id);
}

#[test]
fn unplaceable_groups_wait_for_a_change() {
    let mut s = ClusterScheduler::new();
    let pass = run(
        &mut s,
        &[node("a").res(1, 1)],
        &task("t", "web").cpus(2).times("w", 2),
    );
    assert_eq!(pass.unplaced.len(), 2);
    // Nothing changed: no work, no report.
    assert!(s.schedule(t0()).is_empty());
    // A newcomer of the same group gets the reason at once.
    s.upsert_task(&task("w-new", "web").cpus(2).0, t0());
    let pass = s.schedule(t0());
    assert_eq!(pass.unplaced.len(), 1);
    assert_eq!(pass.unplaced[0].task_id, "w-new");
    // A bigger node: all three are placed.
    s.upsert_node(&node("big").res(8, 8).0);
    let pass = s.schedule(t0());
    assert_eq!(pass.assignments.len(), 3);
    assert_eq!(s.queued(), 0);
}

#[test]
fn finished_tasks_free_their_node() {
    let mut s = ClusterScheduler::new();
    let t = task("r", "web").cpus(1).on("a", TaskState::Running);
    let pass = run(
        &mut s,
        &[node("a").res(1, 1)],
        &[t.0.clone(), task("p", "web").cpus(1).0],
    );
    assert_eq!(pass.unplaced.len(), 1);
    let mut done = t.0;
    done.status.as_mut().unwrap().state = TaskState::Shutdown as i32;
    s.upsert_task(&done, t0());
    let pass = s.schedule(t0());
    assert_eq!(pass.assignments[0].task_id, "p");
}

#[test]
fn tasks_on_unknown_nodes_are_booked_when_the_node_appears() {
    let mut s = ClusterScheduler::new();
    s.upsert_task(
        &task("r", "web").cpus(1).on("late", TaskState::Running).0,
        t0(),
    );
    s.upsert_node(&node("late").res(2, 2).0);
    assert_eq!(
        s.node("late").unwrap().resources().available_nano_cpus(),
        CPU
    );
    assert_eq!(s.node("late").unwrap().active_tasks(), 1);
    // Removing the node forgets it; its tasks no longer count anywhere.
    s.remove_node("late");
    assert!(s.node("late").is_none());
    s.remove_task("r");
    assert_eq!(s.tracked_tasks(), 0);
}

#[test]
fn desired_state_shutdown_stops_counting_but_keeps_resources() {
    let mut s = ClusterScheduler::new();
    let mut t = task("r", "web")
        .cpus(1)
        .max_replicas(1)
        .on("a", TaskState::Running)
        .0;
    run(&mut s, &[node("a").res(2, 2)], &[t.clone()]);
    t.desired_state = TaskState::Shutdown as i32;
    s.upsert_task(&t, t0());
    let info = s.node("a").unwrap();
    assert_eq!(info.active_tasks(), 0);
    assert_eq!(info.resources().available_nano_cpus(), CPU);
    // max_replicas counts active tasks only: a new task fits.
    let pass = run(&mut s, &[], &[task("n", "web").cpus(1).max_replicas(1).0]);
    assert_eq!(pass.assignments.len(), 1);
}

#[test]
fn pending_tasks_desired_past_complete_are_not_placed() {
    let mut s = ClusterScheduler::new();
    let pass = run(
        &mut s,
        &[node("a")],
        &[task("t", "web").desired(TaskState::Shutdown).0],
    );
    assert!(pass.is_empty());
}

#[test]
fn binpack_fills_the_most_used_node_first() {
    let nodes = vec![
        node("a").res(4, 4),
        node("b").res(4, 4),
        node("c").res(4, 4),
    ];
    let mut s = ClusterScheduler::builder().policy(Binpack).build();
    run(
        &mut s,
        &nodes,
        &[task("r", "x").cpus(1).on("b", TaskState::Running).0],
    );
    let pass = run(&mut s, &[], &task("t", "web").cpus(1).times("w", 5));
    let m = per_node(&pass);
    // b is filled up (3 more), then one node takes the other 2.
    assert_eq!(m["b"], 3);
    assert_eq!(m.len(), 2);
    assert_eq!(s.policy().name(), "binpack");
}

/// A researcher's filter: only nodes whose hostname ends in an even digit.
struct EvenHosts;

impl Filter for EvenHosts {
    fn name(&self) -> &str {
        "even hosts"
    }
    fn enabled(&self, _: &TaskRequirements) -> bool {
        true
    }
    fn check(&self, _: &TaskRequirements, c: &Candidate<'_>) -> bool {
        c.node
            .hostname()
            .chars()
            .last()
            .and_then(|d| d.to_digit(10))
            .is_some_and(|d| d % 2 == 0)
    }
    fn explain(&self, nodes: usize) -> String {
        format!("odd hostname on {nodes} nodes")
    }
}

/// A researcher's policy: most free CPU first.
struct MostFreeCpu;

impl Policy for MostFreeCpu {
    type Rank = std::cmp::Reverse<i64>;
    fn name(&self) -> &str {
        "most-free-cpu"
    }
    fn rank(&self, _: &TaskRequirements, c: &Candidate<'_>) -> Self::Rank {
        std::cmp::Reverse(c.node.resources().available_nano_cpus())
    }
}

#[test]
fn custom_filters_and_policies_plug_in() {
    let nodes = vec![
        node("n1").hostname("h1").res(16, 1),
        node("n2").hostname("h2").res(2, 1),
        node("n4").hostname("h4").res(8, 1),
        node("n5").hostname("h5").res(1, 1),
    ];
    let mut s = ClusterScheduler::builder()
        .policy(MostFreeCpu)
        .filter(EvenHosts)
        .build();
    let pass = run(&mut s, &nodes, &task("t", "web").cpus(1).times("w", 7));
    let m = per_node(&pass);
    // n4 (8 free) takes tasks until it is level with n2 (2 free)...
    assert_eq!(m["n4"] + m["n2"], 7);
    assert!(m["n4"] >= 6);
    let mut s = ClusterScheduler::builder().filter(EvenHosts).build();
    let pass = run(&mut s, &nodes[..1], &[task("t", "web").0]);
    assert_eq!(
        pass.unplaced[0].reason,
        "no suitable node (odd hostname on 1 nodes)"
    );
}
