//! A conformance suite for [`Scheduler`] implementations: the guarantees
//! the manager relies on, checked on seeded random clusters.
//!
//! A third-party scheduler proves itself with one test:
//!
//! ```
//! use swarm_scheduler::{conformance, ClusterScheduler, Binpack};
//!
//! conformance::check_all(|| ClusterScheduler::new()).unwrap();
//! conformance::check_all(|| ClusterScheduler::builder().policy(Binpack).build()).unwrap();
//! ```
//!
//! The checks: no node is given more than it advertises (CPU, memory);
//! constraints hold on every node chosen; only ready, active nodes are
//! chosen; every task is either placed or explained (`no suitable node...`);
//! a task is never placed twice; finished tasks give their room back;
//! `undo` gives a decision back and the task is decided again; the same
//! events give the same decisions.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use swarm_api::v1::{
    Annotations, Node, NodeDescription, NodeSpec, NodeState, NodeStatus, Placement,
    ResourceRequirements, Resources, Task, TaskSpec, TaskState, TaskStatus,
};

use crate::scheduler::{Pass, Scheduler};

/// A guarantee that does not hold, with the scenario that broke it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check} (seed {seed}): {detail}")]
#[non_exhaustive]
pub struct Violation {
    /// The check that failed.
    pub check: &'static str,
    /// The seed of the random cluster.
    pub seed: u64,
    /// What went wrong.
    pub detail: String,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const CPU: i64 = 1_000_000_000;

struct Cluster {
    nodes: Vec<Node>,
    /// node id -> (cpus, ready, zone)
    facts: HashMap<String, (i64, bool, String)>,
    tasks: Vec<Task>,
}

fn cluster(seed: u64) -> Cluster {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let n_nodes = 3 + rng.below(10) as usize;
    let mut nodes = Vec::new();
    let mut facts = HashMap::new();
    for i in 0..n_nodes {
        let cpus = 1 + rng.below(6) as i64;
        let ready = rng.below(10) > 0;
        let zone = format!("z{}", rng.below(3));
        let id = format!("node-{seed}-{i}");
        nodes.push(Node {
            id: id.clone(),
            spec: Some(NodeSpec {
                annotations: Some(Annotations {
                    name: id.clone(),
                    labels: [("zone".to_string(), zone.clone())].into(),
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: if ready {
                    NodeState::Ready
                } else {
                    NodeState::Down
                } as i32,
                ..Default::default()
            }),
            description: Some(NodeDescription {
                resources: Some(Resources {
                    nano_cpus: cpus * CPU,
                    memory_bytes: 1 << 34,
                    generic: Vec::new(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        facts.insert(id, (cpus * CPU, ready, zone));
    }
    let mut tasks = Vec::new();
    for s in 0..(1 + rng.below(4)) {
        let cpus = rng.below(3) as i64;
        let zone = (rng.below(2) == 0).then(|| format!("z{}", rng.below(3)));
        let replicas = 1 + rng.below(12);
        for r in 0..replicas {
            tasks.push(Task {
                id: format!("task-{seed}-{s}-{r:03}"),
                service_id: format!("svc{s}"),
                spec_version: 1,
                desired_state: TaskState::Running as i32,
                status: Some(TaskStatus {
                    state: TaskState::Pending as i32,
                    ..Default::default()
                }),
                spec: Some(TaskSpec {
                    resources: Some(ResourceRequirements {
                        limits: None,
                        reservations: Some(Resources {
                            nano_cpus: cpus * CPU,
                            memory_bytes: 0,
                            generic: Vec::new(),
                        }),
                    }),
                    placement: Some(Placement {
                        constraints: zone
                            .iter()
                            .map(|z| format!("node.labels.zone=={z}"))
                            .collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    Cluster {
        nodes,
        facts,
        tasks,
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH
}

fn feed<S: Scheduler>(s: &mut S, c: &Cluster) -> Pass {
    for n in &c.nodes {
        s.upsert_node(n);
    }
    for t in &c.tasks {
        s.upsert_task(t, now());
    }
    s.schedule(now())
}

fn fail(check: &'static str, seed: u64, detail: String) -> Result<(), Violation> {
    Err(Violation {
        check,
        seed,
        detail,
    })
}

/// Checks one seeded scenario: capacity, constraints, readiness,
/// explanations, no double placement, release on finish, undo, determinism.
pub fn check_seed<S: Scheduler>(seed: u64, mut make: impl FnMut() -> S) -> Result<(), Violation> {
    let c = cluster(seed);
    let mut s = make();
    let pass = feed(&mut s, &c);
    let by_id: HashMap<&str, &Task> = c.tasks.iter().map(|t| (t.id.as_str(), t)).collect();

    // Every task placed once or explained.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &pass.assignments {
        *seen.entry(a.task_id.as_str()).or_default() += 1;
    }
    for u in &pass.unplaced {
        *seen.entry(u.task_id.as_str()).or_default() += 1;
        if !u.reason.starts_with("no suitable node") {
            return fail(
                "explained",
                seed,
                format!("{}: reason {:?}", u.task_id, u.reason),
            );
        }
    }
    for t in &c.tasks {
        match seen.get(t.id.as_str()) {
            Some(1) => {}
            n => return fail("placed once or explained", seed, format!("{}: {n:?}", t.id)),
        }
    }

    // Capacity, readiness and constraints of every choice.
    let mut used: HashMap<&str, i64> = HashMap::new();
    for a in &pass.assignments {
        let Some(t) = by_id.get(a.task_id.as_str()) else {
            return fail("known tasks", seed, format!("unknown task {}", a.task_id));
        };
        let Some((cpus, ready, zone)) = c.facts.get(&a.node_id) else {
            return fail("known nodes", seed, format!("unknown node {}", a.node_id));
        };
        if !ready {
            return fail(
                "ready nodes only",
                seed,
                format!("{} on down {}", t.id, a.node_id),
            );
        }
        let want = t
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.reservations.as_ref())
            .map_or(0, |r| r.nano_cpus);
        let u = used.entry(a.node_id.as_str()).or_default();
        *u += want;
        if *u > *cpus {
            return fail("capacity", seed, format!("{} over-committed", a.node_id));
        }
        let constraints = t
            .spec
            .as_ref()
            .and_then(|s| s.placement.as_ref())
            .map(|p| p.constraints.clone())
            .unwrap_or_default();
        for k in constraints {
            if k != format!("node.labels.zone=={zone}") {
                return fail(
                    "constraints",
                    seed,
                    format!("{} on {} breaks {k}", t.id, a.node_id),
                );
            }
        }
    }

    // Determinism.
    let again = feed(&mut make(), &c);
    if again != pass {
        return fail(
            "deterministic",
            seed,
            "the same events gave other decisions".into(),
        );
    }

    // Undo gives the decision back; the task is placed again.
    if let Some(a) = pass.assignments.first() {
        if !s.undo(a) {
            return fail("undo", seed, format!("undo of {} refused", a.task_id));
        }
        let redo = s.schedule(now());
        // The room it held may go to another waiting task; either way the
        // undone task is decided again.
        if !redo.assignments.iter().any(|b| b.task_id == a.task_id)
            && !redo.unplaced.iter().any(|b| b.task_id == a.task_id)
        {
            return fail("undo", seed, format!("{} not decided again", a.task_id));
        }
        // Commit everything; then finish every placed task: all room comes
        // back, so the previously unplaced tasks that fit an empty cluster
        // get placed.
        let mut placed: Vec<(String, String)> = pass
            .assignments
            .iter()
            .filter(|b| b.task_id != a.task_id)
            .chain(redo.assignments.iter())
            .map(|b| (b.task_id.clone(), b.node_id.clone()))
            .collect();
        placed.sort();
        for (task_id, node_id) in &placed {
            if let Some(t) = by_id.get(task_id.as_str()) {
                let mut t = (*t).clone();
                t.node_id.clone_from(node_id);
                if let Some(st) = t.status.as_mut() {
                    st.state = TaskState::Running as i32;
                }
                s.upsert_task(&t, now());
                if let Some(st) = t.status.as_mut() {
                    st.state = TaskState::Complete as i32;
                }
                s.upsert_task(&t, now());
            }
        }
        let after = s.schedule(now());
        // A task pending before is retried (placed, or explained again) now
        // that the cluster is empty, when some node could ever take it.
        for u in &pass.unplaced {
            let Some(t) = by_id.get(u.task_id.as_str()) else {
                continue;
            };
            if redo.assignments.iter().any(|b| b.task_id == u.task_id) {
                continue;
            }
            let want = t
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.reservations.as_ref())
                .map_or(0, |r| r.nano_cpus);
            let zone = t
                .spec
                .as_ref()
                .and_then(|s| s.placement.as_ref())
                .and_then(|p| p.constraints.first())
                .map(|k| k.trim_start_matches("node.labels.zone==").to_string());
            let fits_somewhere = c.facts.values().any(|(cpus, ready, z)| {
                *ready && *cpus >= want && zone.as_ref().is_none_or(|w| w == z)
            });
            let handled = after.assignments.iter().any(|b| b.task_id == u.task_id)
                || after.unplaced.iter().any(|b| b.task_id == u.task_id);
            if fits_somewhere && !handled {
                return fail(
                    "finished tasks free their room",
                    seed,
                    format!("{} not retried after the cluster emptied", u.task_id),
                );
            }
        }
    }
    Ok(())
}

/// Runs [`check_seed`] over 64 seeds.
pub fn check_all<S: Scheduler>(mut make: impl FnMut() -> S) -> Result<(), Violation> {
    for seed in 1..=64 {
        check_seed(seed, &mut make)?;
    }
    Ok(())
}
