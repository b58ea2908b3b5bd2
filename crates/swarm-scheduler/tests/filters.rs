//! Every filter and its explanation, as tables: a cluster, a task, and the
//! outcome SwarmKit gives (placed on which nodes, or the exact reason).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use swarm_api::v1::{NodeAvailability, NodeState, Protocol, TaskState};
use swarm_scheduler::{ClusterScheduler, Scheduler};

enum Want {
    /// The task lands on one of these nodes.
    On(&'static [&'static str]),
    /// The task stays pending with exactly this reason.
    Pending(&'static str),
}

struct Case {
    name: &'static str,
    nodes: Vec<N>,
    /// Tasks already running on nodes before the task under test.
    running: Vec<T>,
    task: T,
    want: Want,
}

fn check(case: Case) {
    let mut s = ClusterScheduler::new();
    for n in &case.nodes {
        s.upsert_node(&n.0);
    }
    for t in &case.running {
        s.upsert_task(&t.0, t0());
    }
    s.upsert_task(&case.task.0, t0());
    let pass = s.schedule(t0());
    match case.want {
        Want::On(nodes) => {
            assert!(
                pass.unplaced.is_empty(),
                "{}: {:?}",
                case.name,
                pass.unplaced
            );
            assert_eq!(pass.assignments.len(), 1, "{}", case.name);
            assert!(
                nodes.contains(&pass.assignments[0].node_id.as_str()),
                "{}: placed on {}",
                case.name,
                pass.assignments[0].node_id
            );
        }
        Want::Pending(reason) => {
            assert!(
                pass.assignments.is_empty(),
                "{}: {:?}",
                case.name,
                pass.assignments
            );
            assert_eq!(pass.unplaced.len(), 1, "{}", case.name);
            assert_eq!(pass.unplaced[0].reason, reason, "{}", case.name);
        }
    }
}

fn running(id: &str, service: &str, node: &str) -> T {
    task(id, service).on(node, TaskState::Running)
}

#[test]
fn filter_table() {
    let cases = vec![
        Case {
            name: "no nodes at all",
            nodes: vec![],
            running: vec![],
            task: task("t", "s"),
            want: Want::Pending("no suitable node"),
        },
        Case {
            name: "ready filter: down, paused, drained, unknown",
            nodes: vec![
                node("down").state(NodeState::Down),
                node("paused").availability(NodeAvailability::Pause),
                node("drained").availability(NodeAvailability::Drain),
                node("unknown").state(NodeState::Unknown),
                node("ok"),
            ],
            running: vec![],
            task: task("t", "s"),
            want: Want::On(&["ok"]),
        },
        Case {
            name: "ready filter explains one node",
            nodes: vec![node("down").state(NodeState::Disconnected)],
            running: vec![],
            task: task("t", "s"),
            want: Want::Pending("no suitable node (1 node not available for new tasks)"),
        },
        Case {
            name: "resource filter: cpu and memory",
            nodes: vec![
                node("small").res(1, 1),
                node("big").res(4, 8),
                node("mem").res(8, 1),
            ],
            running: vec![],
            task: task("t", "s").cpus(2).mem_gib(2),
            want: Want::On(&["big"]),
        },
        Case {
            name: "resource filter counts running reservations",
            nodes: vec![node("a").res(4, 8), node("b").res(4, 8)],
            running: vec![
                running("r1", "x", "a").cpus(3),
                running("r2", "x", "b").cpus(2),
            ],
            task: task("t", "s").cpus(2),
            want: Want::On(&["b"]),
        },
        Case {
            name: "resource filter explains",
            nodes: vec![node("a").res(1, 1), node("b").res(1, 1)],
            running: vec![],
            task: task("t", "s").cpus(2),
            want: Want::Pending("no suitable node (insufficient resources on 2 nodes)"),
        },
        Case {
            name: "generic: discrete and named",
            nodes: vec![
                node("none").res(4, 4),
                node("ssd").res(4, 4).discrete("ssd", 1),
                node("gpu").res(4, 4).named("gpu", "G0").named("gpu", "G1"),
            ],
            running: vec![],
            task: task("t", "s").generic("gpu", 2),
            want: Want::On(&["gpu"]),
        },
        Case {
            name: "generic: not enough units",
            nodes: vec![node("ssd").res(4, 4).discrete("ssd", 1)],
            running: vec![],
            task: task("t", "s").generic("ssd", 2),
            want: Want::Pending("no suitable node (insufficient resources on 1 node)"),
        },
        Case {
            name: "generic: a task may not reserve a named unit",
            nodes: vec![node("gpu").res(4, 4).named("gpu", "G0")],
            running: vec![],
            task: task("t", "s").named_reservation("gpu", "G0"),
            want: Want::Pending("no suitable node (insufficient resources on 1 node)"),
        },
        Case {
            name: "plugin filter: network driver",
            nodes: vec![
                node("plain"),
                node("weave").plugin("Network", "weave"),
                node("other").plugin("Volume", "weave"),
            ],
            running: vec![],
            task: task("t", "s").network_driver("weave"),
            want: Want::On(&["weave"]),
        },
        Case {
            name: "plugin filter: name:latest matches",
            nodes: vec![node("w").plugin("Network", "weave:latest"), node("plain")],
            running: vec![],
            task: task("t", "s").network_driver("weave"),
            want: Want::On(&["w"]),
        },
        Case {
            name: "plugin filter: no engine description passes",
            nodes: vec![node("noengine").no_engine(), node("plain")],
            running: vec![],
            task: task("t", "s").network_driver("weave"),
            want: Want::On(&["noengine"]),
        },
        Case {
            name: "plugin filter: log driver only checked where log plugins are reported",
            nodes: vec![node("old"), node("logs").plugin("Log", "syslog")],
            running: vec![],
            task: task("t", "s").log_driver("gelf"),
            want: Want::On(&["old"]),
        },
        Case {
            name: "plugin filter explains",
            nodes: vec![node("a"), node("b"), node("c").plugin("Log", "json-file")],
            running: vec![],
            task: task("t", "s").network_driver("weave"),
            want: Want::Pending("no suitable node (missing plugin on 3 nodes)"),
        },
        Case {
            name: "constraint filter",
            nodes: vec![node("a").label("zone", "a"), node("b").label("zone", "b")],
            running: vec![],
            task: task("t", "s").constraint("node.labels.zone==b"),
            want: Want::On(&["b"]),
        },
        Case {
            name: "constraint filter explains",
            nodes: vec![node("a"), node("b"), node("c")],
            running: vec![],
            task: task("t", "s").constraint("node.role==manager"),
            want: Want::Pending(
                "no suitable node (scheduling constraints not satisfied on 3 nodes)",
            ),
        },
        Case {
            name: "malformed constraints are ignored (SwarmKit: the control API refuses them)",
            nodes: vec![node("a")],
            running: vec![],
            task: task("t", "s").constraint("node.role=manager"),
            want: Want::On(&["a"]),
        },
        Case {
            name: "platform filter: x86_64 is amd64, aarch64 is arm64",
            nodes: vec![
                node("x86").platform("linux", "x86_64"),
                node("arm").platform("linux", "aarch64"),
            ],
            running: vec![],
            task: task("t", "s").platform("linux", "arm64"),
            want: Want::On(&["arm"]),
        },
        Case {
            name: "platform filter: empty fields accept any",
            nodes: vec![
                node("win").platform("windows", "amd64"),
                node("lin").platform("linux", "s390x"),
            ],
            running: vec![],
            task: task("t", "s").platform("", "s390x"),
            want: Want::On(&["lin"]),
        },
        Case {
            name: "platform filter explains (no platform reported counts as unsupported)",
            nodes: vec![
                node("a").platform("linux", "amd64"),
                node("b").platform("windows", "arm64"),
                node("c").no_platform(),
            ],
            running: vec![],
            task: task("t", "s")
                .platform("linux", "arm64")
                .platform("windows", "amd64"),
            want: Want::Pending("no suitable node (unsupported platform on 3 nodes)"),
        },
        Case {
            name: "host port filter",
            nodes: vec![node("a"), node("b")],
            running: vec![running("r", "x", "a").host_port(8080, Protocol::Tcp)],
            task: task("t", "s").host_port(8080, Protocol::Tcp),
            want: Want::On(&["b"]),
        },
        Case {
            name: "host port filter: protocols are distinct",
            nodes: vec![node("a")],
            running: vec![running("r", "x", "a").host_port(53, Protocol::Tcp)],
            task: task("t", "s").host_port(53, Protocol::Udp),
            want: Want::On(&["a"]),
        },
        Case {
            name: "host port filter explains",
            nodes: vec![node("a"), node("b")],
            running: vec![
                running("r1", "x", "a").host_port(80, Protocol::Tcp),
                running("r2", "x", "b").host_port(80, Protocol::Tcp),
            ],
            task: task("t", "s").host_port(80, Protocol::Tcp),
            want: Want::Pending("no suitable node (host-mode port already in use on 2 nodes)"),
        },
        Case {
            name: "max replicas filter",
            nodes: vec![node("a"), node("b")],
            running: vec![running("r1", "s", "a"), running("r2", "s", "a")],
            task: task("t", "s").max_replicas(2),
            want: Want::On(&["b"]),
        },
        Case {
            name: "max replicas only counts active tasks of the same service",
            nodes: vec![node("a")],
            running: vec![
                running("r1", "other", "a"),
                running("r2", "s", "a").desired(TaskState::Shutdown),
            ],
            task: task("t", "s").max_replicas(1),
            want: Want::On(&["a"]),
        },
        Case {
            name: "max replicas explains without a count",
            nodes: vec![node("a"), node("b")],
            running: vec![running("r1", "s", "a"), running("r2", "s", "b")],
            task: task("t", "s").max_replicas(1),
            want: Want::Pending("no suitable node (max replicas per node limit exceed)"),
        },
        Case {
            name: "most frequent refusal first; a node counts once, for the first filter",
            nodes: vec![
                node("down").state(NodeState::Down).res(1, 1),
                node("small1").res(1, 1),
                node("small2").res(1, 1),
                node("big-wrong-zone").res(8, 8).label("zone", "b"),
                node("arm")
                    .res(8, 8)
                    .label("zone", "a")
                    .platform("linux", "arm64"),
                node("arm2")
                    .res(8, 8)
                    .label("zone", "a")
                    .platform("linux", "arm64"),
                node("arm3")
                    .res(8, 8)
                    .label("zone", "a")
                    .platform("linux", "arm64"),
            ],
            running: vec![],
            task: task("t", "s")
                .cpus(2)
                .constraint("node.labels.zone==a")
                .platform("linux", "amd64"),
            want: Want::Pending(
                "no suitable node (unsupported platform on 3 nodes; insufficient resources on 2 nodes; \
                 1 node not available for new tasks; scheduling constraints not satisfied on 1 node)",
            ),
        },
    ];
    for c in cases {
        check(c);
    }
}

#[test]
fn preassigned_tasks_are_checked_against_their_node_only() {
    let mut s = ClusterScheduler::new();
    s.upsert_node(&node("a").res(1, 1).0);
    s.upsert_node(&node("b").res(8, 8).0);
    let ok = task("g1", "global").cpus(1).on("a", TaskState::Pending);
    let too_big = task("g2", "global").cpus(2).on("a", TaskState::Pending);
    s.upsert_task(&ok.0, t0());
    s.upsert_task(&too_big.0, t0());
    let pass = s.schedule(t0());
    assert_eq!(pass.assignments.len(), 1);
    assert_eq!(pass.assignments[0].task_id, "g1");
    assert_eq!(pass.assignments[0].node_id, "a");
    assert!(pass.assignments[0].preassigned);
    assert_eq!(
        pass.assignments[0].status_message(),
        "scheduler confirmed task can run on preassigned node"
    );
    // SwarmKit writes the bare explanation for a pre-assigned task.
    assert_eq!(pass.unplaced.len(), 1);
    assert_eq!(pass.unplaced[0].task_id, "g2");
    assert_eq!(pass.unplaced[0].reason, "insufficient resources on 1 node");
    // Nothing changed: the refused task is not retried...
    assert!(s.schedule(t0()).is_empty());
    // ...until the node changes.
    s.upsert_node(&node("a").res(4, 4).0);
    let pass = s.schedule(t0());
    assert_eq!(pass.assignments.len(), 1);
    assert_eq!(pass.assignments[0].task_id, "g2");
}
