//! SwarmKit's scheduler benchmark shapes, timed, with SwarmKit's own figures
//! on a 2-core VM (its `benchScheduler`) as anchors.
//!
//! ```text
//! cargo bench -p swarm-scheduler --bench shapes            # every shape
//! cargo bench -p swarm-scheduler --bench shapes -- 1k/     # shapes whose name contains "1k/"
//! ```
//!
//! Like SwarmKit's benchmark, each run starts from an empty scheduler and
//! times everything from the first node event to the last task confirmed:
//! node events, task events (tasks PENDING, no service, as in SwarmKit's
//! benchmark), scheduling passes, and the ASSIGNED events that confirm
//! each decision (the store's commit feedback). Building the node objects
//! is not timed.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "a benchmark binary prints its figures"
)]

use std::time::{Duration, Instant, SystemTime};

use swarm_api::v1::placement_preference::Preference;
use swarm_api::v1::{
    Annotations, EngineDescription, Network, NetworkAttachment, NetworkDriverState, Node,
    NodeDescription, NodeSpec, NodeState, NodeStatus, Placement, PlacementPreference,
    PluginDescription, ResourceRequirements, Resources, SpreadOver, Task, TaskSpec, TaskState,
    TaskStatus,
};
use swarm_scheduler::{ClusterScheduler, Scheduler};

#[derive(Clone, Copy)]
enum Kind {
    /// SwarmKit's plain shape: ready nodes, identical pending tasks.
    Plain,
    /// Every third node has the `network` plugin the tasks need.
    NetworkPlugin,
    /// One service spread over a 10-value label, with CPU reservations.
    Spread10,
}

/// A target's wording and its check on (wall seconds, tasks).
type Target = (&'static str, fn(f64, usize) -> bool);

struct Shape {
    name: &'static str,
    nodes: usize,
    tasks: usize,
    kind: Kind,
    /// SwarmKit's time on a 2-core VM, seconds; `Err` for a note instead.
    anchor: Result<f64, &'static str>,
    /// The issue's target, as a check on the measured wall time.
    target: Option<Target>,
    reps: usize,
}

fn ten_x(anchor: f64) -> impl Fn(f64) -> bool {
    move |wall| wall * 10.0 <= anchor
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "1k nodes/1k tasks",
            nodes: 1_000,
            tasks: 1_000,
            kind: Kind::Plain,
            anchor: Ok(0.139),
            target: Some(("≥10× SwarmKit", |w, _| ten_x(0.139)(w))),
            reps: 5,
        },
        Shape {
            name: "1k nodes/10k tasks",
            nodes: 1_000,
            tasks: 10_000,
            kind: Kind::Plain,
            anchor: Ok(1.35),
            target: Some(("≥10× SwarmKit", |w, _| ten_x(1.35)(w))),
            reps: 5,
        },
        Shape {
            name: "1k nodes/100k tasks",
            nodes: 1_000,
            tasks: 100_000,
            kind: Kind::Plain,
            anchor: Ok(16.6),
            target: Some(("≥10× SwarmKit", |w, _| ten_x(16.6)(w))),
            reps: 3,
        },
        Shape {
            name: "1k nodes/100k tasks, network plugin on every 3rd node",
            nodes: 1_000,
            tasks: 100_000,
            kind: Kind::NetworkPlugin,
            anchor: Ok(18.5),
            target: Some(("≥10× SwarmKit", |w, _| ten_x(18.5)(w))),
            reps: 3,
        },
        Shape {
            name: "5k nodes/100k tasks, network plugin on every 3rd node",
            nodes: 5_000,
            tasks: 100_000,
            kind: Kind::NetworkPlugin,
            anchor: Ok(69.8),
            target: Some(("≥10× SwarmKit", |w, _| ten_x(69.8)(w))),
            reps: 3,
        },
        Shape {
            name: "100k nodes/1k tasks",
            nodes: 100_000,
            tasks: 1_000,
            kind: Kind::Plain,
            anchor: Ok(22.3),
            target: Some(("< 1 s and ≥10× SwarmKit", |w, _| {
                w < 1.0 && ten_x(22.3)(w)
            })),
            reps: 3,
        },
        Shape {
            name: "100k nodes/100k tasks",
            nodes: 100_000,
            tasks: 100_000,
            kind: Kind::Plain,
            anchor: Ok(900.0),
            target: Some(("< 10 s (SwarmKit: not done in 900 s)", |w, _| w < 10.0)),
            reps: 2,
        },
        Shape {
            name: "100k nodes/1M tasks",
            nodes: 100_000,
            tasks: 1_000_000,
            kind: Kind::Plain,
            anchor: Err("no SwarmKit figure"),
            target: None,
            reps: 1,
        },
        Shape {
            name: "10k nodes/100k tasks, spread over a 10-value label",
            nodes: 10_000,
            tasks: 100_000,
            kind: Kind::Spread10,
            anchor: Err("no SwarmKit figure"),
            target: Some(("≥ 50k tasks/s", |w, t| t as f64 / w >= 50_000.0)),
            reps: 3,
        },
    ]
}

/// A random-looking 25-character id, like SwarmKit's `identity.NewID()`.
fn node_id(i: usize) -> String {
    let mut x = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut s = String::with_capacity(25);
    for _ in 0..25 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = (x % 36) as u32;
        s.push(char::from_digit(d, 36).unwrap());
    }
    s
}

fn build_nodes(shape: &Shape) -> Vec<Node> {
    (0..shape.nodes)
        .map(|i| {
            let mut labels = std::collections::BTreeMap::new();
            if matches!(shape.kind, Kind::Spread10) {
                labels.insert("zone".to_string(), format!("zone-{}", i % 10));
            }
            let plugins = if matches!(shape.kind, Kind::NetworkPlugin) && i % 3 == 0 {
                vec![PluginDescription {
                    r#type: "Network".into(),
                    name: "network".into(),
                }]
            } else {
                Vec::new()
            };
            Node {
                id: node_id(i),
                spec: Some(NodeSpec {
                    annotations: Some(Annotations {
                        name: format!("name{i}"),
                        labels,
                    }),
                    ..Default::default()
                }),
                status: Some(NodeStatus {
                    state: NodeState::Ready as i32,
                    ..Default::default()
                }),
                description: Some(NodeDescription {
                    engine: Some(EngineDescription {
                        plugins,
                        ..Default::default()
                    }),
                    resources: matches!(shape.kind, Kind::Spread10).then(|| Resources {
                        nano_cpus: 16_000_000_000,
                        memory_bytes: 64 << 30,
                        generic: Vec::new(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect()
}

fn task_template(shape: &Shape) -> Task {
    let mut t = Task {
        desired_state: TaskState::Running as i32,
        service_annotations: Some(Annotations {
            name: "serviceName".into(),
            ..Default::default()
        }),
        status: Some(TaskStatus {
            state: TaskState::Pending as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    match shape.kind {
        Kind::Plain => {}
        Kind::NetworkPlugin => {
            t.networks = vec![NetworkAttachment {
                network: Some(Network {
                    driver_state: Some(NetworkDriverState {
                        name: "network".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }];
        }
        Kind::Spread10 => {
            t.service_id = "svc".into();
            t.spec_version = 1;
            t.spec = Some(TaskSpec {
                resources: Some(ResourceRequirements {
                    limits: None,
                    reservations: Some(Resources {
                        nano_cpus: 100_000_000,
                        memory_bytes: 64 << 20,
                        generic: Vec::new(),
                    }),
                }),
                placement: Some(Placement {
                    preferences: vec![PlacementPreference {
                        preference: Some(Preference::Spread(SpreadOver {
                            spread_descriptor: "node.labels.zone".into(),
                        })),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    t
}

/// One timed run; returns the wall time and checks every task was placed.
fn run_once(shape: &Shape, nodes: &[Node]) -> Duration {
    let now = SystemTime::UNIX_EPOCH;
    let mut template = task_template(shape);
    let start = Instant::now();
    let mut s = ClusterScheduler::new();
    for n in nodes {
        s.upsert_node(n);
    }
    for i in 0..shape.tasks {
        template.id.clear();
        template.id.push_str("task");
        template.id.push_str(&i.to_string());
        s.upsert_task(&template, now);
    }
    let pass = s.schedule(now);
    // The store's commit feedback: every task comes back ASSIGNED.
    if let Some(st) = template.status.as_mut() {
        st.state = TaskState::Assigned as i32;
    }
    for a in &pass.assignments {
        template.id.clone_from(&a.task_id);
        template.node_id.clone_from(&a.node_id);
        s.upsert_task(&template, now);
    }
    let wall = start.elapsed();
    assert_eq!(
        pass.assignments.len(),
        shape.tasks,
        "{}: {} unplaced, e.g. {:?}",
        shape.name,
        pass.unplaced.len(),
        pass.unplaced.first()
    );
    if matches!(shape.kind, Kind::Spread10) {
        let mut per_zone = [0usize; 10];
        for a in &pass.assignments {
            let zone = s.node(&a.node_id).unwrap().node_label("zone").unwrap();
            per_zone[zone[5..].parse::<usize>().unwrap()] += 1;
        }
        assert!(
            per_zone.iter().all(|&c| c == shape.tasks / 10),
            "{per_zone:?}"
        );
    }
    drop(s);
    wall
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    println!(
        "swarm-scheduler vs SwarmKit benchScheduler (SwarmKit figures: Go scheduler on a 2-core VM)\n"
    );
    println!(
        "{:<56} {:>10} {:>12} {:>12} {:>10}  target",
        "shape", "wall", "tasks/s", "SwarmKit", "speedup"
    );
    for shape in shapes() {
        if !filter.is_empty() && !filter.iter().any(|f| shape.name.contains(f.as_str())) {
            continue;
        }
        let nodes = build_nodes(&shape);
        let mut walls: Vec<Duration> = (0..shape.reps).map(|_| run_once(&shape, &nodes)).collect();
        walls.sort();
        let wall = walls[walls.len() / 2].as_secs_f64();
        let rate = shape.tasks as f64 / wall;
        let (anchor, speedup) = match shape.anchor {
            Ok(a) if shape.nodes == 100_000 && shape.tasks == 100_000 => {
                (format!("> {a:.0} s"), format!("> {:.0}×", a / wall))
            }
            Ok(a) => (format!("{a:.3} s"), format!("{:.0}×", a / wall)),
            Err(note) => (note.to_string(), "-".to_string()),
        };
        let verdict = match &shape.target {
            Some((text, check)) => format!(
                "{} {text}",
                if check(wall, shape.tasks) {
                    "PASS"
                } else {
                    "MISS"
                }
            ),
            None => "-".to_string(),
        };
        println!(
            "{:<56} {:>8.3} s {:>12.0} {:>12} {:>10}  {verdict}",
            shape.name, wall, rate, anchor, speedup
        );
    }
}
