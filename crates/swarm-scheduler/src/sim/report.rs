//! Placement quality of a simulated cluster, and side-by-side printing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use swarm_api::v1::{NodeAvailability, NodeState, TaskState};

use super::engine::Simulation;
use crate::requirements::LabelRef;

/// Tasks per value of one spread label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelBalance {
    /// The descriptor, e.g. `node.labels.zone`.
    pub descriptor: String,
    /// Running tasks of the services spreading over it, per label value
    /// (`""` for nodes without the label).
    pub per_value: BTreeMap<String, usize>,
    /// The largest max-min of one service's tasks over the label's values
    /// (values of usable nodes), over the services spreading over it.
    pub worst_service_spread: usize,
}

impl LabelBalance {
    /// Largest minus smallest count.
    pub fn spread(&self) -> usize {
        let max = self.per_value.values().max().copied().unwrap_or(0);
        let min = self.per_value.values().min().copied().unwrap_or(0);
        max - min
    }
}

/// What a run of a workload achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Scheduler (policy) name.
    pub policy: String,
    /// Nodes at the end.
    pub nodes: usize,
    /// Nodes ready and active.
    pub usable_nodes: usize,
    /// Tasks running.
    pub placed: usize,
    /// Tasks pending.
    pub pending: usize,
    /// Pending tasks per reason.
    pub pending_reasons: BTreeMap<String, usize>,
    /// Fewest running tasks on a usable node.
    pub min_tasks_per_node: usize,
    /// Most running tasks on a usable node.
    pub max_tasks_per_node: usize,
    /// Usable nodes running nothing.
    pub empty_nodes: usize,
    /// Balance over each spread label in use.
    pub balance: Vec<LabelBalance>,
    /// Reserved share of the usable nodes' CPU, in percent.
    pub cpu_reserved_pct: f64,
    /// Reserved share of the usable nodes' memory, in percent.
    pub memory_reserved_pct: f64,
    /// Share of the free CPU (percent) stranded on nodes that cannot fit
    /// the largest task of any service (by CPU and memory).
    pub fragmentation_pct: f64,
    /// Failures injected by the workload.
    pub failures_injected: usize,
    /// Scheduling passes run.
    pub passes: u64,
    /// Time spent inside the scheduler (events and passes).
    pub scheduler_time: Duration,
    /// Wall time of the whole run.
    pub wall_time: Duration,
}

impl Report {
    /// Measures the cluster as it is now.
    pub fn of(sim: &Simulation, wall_time: Duration) -> Report {
        let usable: Vec<&swarm_api::v1::Node> = sim
            .nodes
            .values()
            .filter(|n| {
                n.status
                    .as_ref()
                    .is_some_and(|s| s.state() == NodeState::Ready)
                    && n.spec
                        .as_ref()
                        .is_none_or(|s| s.availability() == NodeAvailability::Active)
            })
            .collect();
        let mut per_node: BTreeMap<&str, usize> =
            usable.iter().map(|n| (n.id.as_str(), 0)).collect();
        let mut used: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        let mut placed = 0;
        let mut pending_reasons: BTreeMap<String, usize> = BTreeMap::new();
        for t in sim.tasks.values() {
            if t.state() == TaskState::Running {
                placed += 1;
                if let Some(c) = per_node.get_mut(t.node_id.as_str()) {
                    *c += 1;
                }
                let r = t
                    .spec
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.reservations.as_ref());
                let e = used.entry(t.node_id.as_str()).or_default();
                e.0 += r.map_or(0, |r| r.nano_cpus);
                e.1 += r.map_or(0, |r| r.memory_bytes);
            } else {
                let reason = t
                    .status
                    .as_ref()
                    .map(|s| s.err.clone())
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "not yet scheduled".to_string());
                *pending_reasons.entry(reason).or_default() += 1;
            }
        }
        let pending = pending_reasons.values().sum();

        // Resources of usable nodes.
        let (mut cpu_total, mut cpu_used, mut mem_total, mut mem_used) = (0i64, 0i64, 0i64, 0i64);
        let (largest_cpu, largest_mem) = sim
            .services
            .values()
            .map(|s| ((s.def.cpus * 1e9).round() as i64, s.def.memory.0))
            .fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        let (mut free_total, mut free_stranded) = (0i64, 0i64);
        for n in &usable {
            let r = n.description.as_ref().and_then(|d| d.resources.as_ref());
            let (tc, tm) = (
                r.map_or(0, |r| r.nano_cpus),
                r.map_or(0, |r| r.memory_bytes),
            );
            let (uc, um) = used.get(n.id.as_str()).copied().unwrap_or((0, 0));
            cpu_total += tc;
            cpu_used += uc;
            mem_total += tm;
            mem_used += um;
            let (fc, fm) = ((tc - uc).max(0), (tm - um).max(0));
            free_total += fc;
            if fc < largest_cpu || fm < largest_mem {
                free_stranded += fc;
            }
        }
        let pct = |a: i64, b: i64| {
            if b > 0 {
                100.0 * a as f64 / b as f64
            } else {
                0.0
            }
        };

        // Balance per spread descriptor.
        let mut balance: Vec<LabelBalance> = Vec::new();
        for s in sim.services.values() {
            for d in &s.def.preferences {
                let Some(label) = LabelRef::parse(d) else {
                    continue;
                };
                let idx = match balance.iter().position(|b| &b.descriptor == d) {
                    Some(i) => i,
                    None => {
                        let mut per_value = BTreeMap::new();
                        for n in &usable {
                            per_value.insert(label_of(n, &label), 0);
                        }
                        balance.push(LabelBalance {
                            descriptor: d.clone(),
                            per_value,
                            worst_service_spread: 0,
                        });
                        balance.len() - 1
                    }
                };
                let mut mine: BTreeMap<String, usize> =
                    usable.iter().map(|n| (label_of(n, &label), 0)).collect();
                for t in sim.tasks.values() {
                    if t.service_id == s.def.name
                        && t.state() == TaskState::Running
                        && let Some(n) = sim.nodes.get(&t.node_id)
                    {
                        let v = label_of(n, &label);
                        *balance[idx].per_value.entry(v.clone()).or_default() += 1;
                        *mine.entry(v).or_default() += 1;
                    }
                }
                let spread = mine.values().max().copied().unwrap_or(0)
                    - mine.values().min().copied().unwrap_or(0);
                let b = &mut balance[idx];
                b.worst_service_spread = b.worst_service_spread.max(spread);
            }
        }

        Report {
            policy: sim.scheduler_name().to_string(),
            nodes: sim.nodes.len(),
            usable_nodes: usable.len(),
            placed,
            pending,
            pending_reasons,
            min_tasks_per_node: per_node.values().min().copied().unwrap_or(0),
            max_tasks_per_node: per_node.values().max().copied().unwrap_or(0),
            empty_nodes: per_node.values().filter(|c| **c == 0).count(),
            balance,
            cpu_reserved_pct: pct(cpu_used, cpu_total),
            memory_reserved_pct: pct(mem_used, mem_total),
            fragmentation_pct: pct(free_stranded, free_total),
            failures_injected: sim.failures_injected,
            passes: sim.passes,
            scheduler_time: sim.scheduler_time,
            wall_time,
        }
    }
}

fn label_of(n: &swarm_api::v1::Node, l: &LabelRef) -> String {
    let v = match l {
        LabelRef::Node(name) => n
            .spec
            .as_ref()
            .and_then(|s| s.annotations.as_ref())
            .and_then(|a| a.labels.get(name)),
        LabelRef::Engine(name) => n
            .description
            .as_ref()
            .and_then(|d| d.engine.as_ref())
            .and_then(|e| e.labels.get(name)),
    };
    v.cloned().unwrap_or_default()
}

/// Rows of one table: a name and one cell per report.
type Rows = Vec<(String, Vec<String>)>;

fn table(out: &mut String, rows: &Rows) {
    let name_w = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let cols = rows.first().map_or(0, |(_, v)| v.len());
    let col_w: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|(_, v)| v[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (name, values) in rows {
        let _ = write!(out, "{name:<name_w$}");
        for (i, v) in values.iter().enumerate() {
            let w = col_w[i];
            let _ = write!(out, "  {v:>w$}");
        }
        out.push('\n');
    }
}

/// Prints reports side by side, one column per policy: the summary, then
/// tasks per label value for each spread label, then pending reasons.
pub fn render(reports: &[Report]) -> String {
    let mut rows: Rows = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&Report) -> String| {
        rows.push((name.to_string(), reports.iter().map(f).collect()));
    };
    row("policy", &|r| r.policy.clone());
    row("nodes (usable)", &|r| {
        format!("{} ({})", r.nodes, r.usable_nodes)
    });
    row("tasks placed", &|r| r.placed.to_string());
    row("tasks pending", &|r| r.pending.to_string());
    row("tasks/node min..max", &|r| {
        format!("{}..{}", r.min_tasks_per_node, r.max_tasks_per_node)
    });
    row("empty nodes", &|r| r.empty_nodes.to_string());
    row("cpu reserved", &|r| format!("{:.1}%", r.cpu_reserved_pct));
    row("memory reserved", &|r| {
        format!("{:.1}%", r.memory_reserved_pct)
    });
    row("free cpu stranded", &|r| {
        format!("{:.1}%", r.fragmentation_pct)
    });
    row("failures injected", &|r| r.failures_injected.to_string());
    row("scheduling passes", &|r| r.passes.to_string());
    row("scheduler time", &|r| {
        format!("{:.2} ms", r.scheduler_time.as_secs_f64() * 1e3)
    });
    row("wall time", &|r| {
        format!("{:.2} ms", r.wall_time.as_secs_f64() * 1e3)
    });
    let mut descriptors: Vec<String> = Vec::new();
    for r in reports {
        for b in &r.balance {
            if !descriptors.contains(&b.descriptor) {
                descriptors.push(b.descriptor.clone());
            }
        }
    }
    for d in &descriptors {
        row(&format!("{d}: max-min tasks"), &|r| {
            r.balance
                .iter()
                .find(|b| &b.descriptor == d)
                .map(|b| b.spread().to_string())
                .unwrap_or_default()
        });
        row(&format!("{d}: worst service max-min"), &|r| {
            r.balance
                .iter()
                .find(|b| &b.descriptor == d)
                .map(|b| b.worst_service_spread.to_string())
                .unwrap_or_default()
        });
    }
    let mut out = String::new();
    table(&mut out, &rows);

    for d in &descriptors {
        let mut values: Vec<String> = Vec::new();
        for r in reports {
            for b in r.balance.iter().filter(|b| &b.descriptor == d) {
                for v in b.per_value.keys() {
                    if !values.contains(v) {
                        values.push(v.clone());
                    }
                }
            }
        }
        values.sort();
        let mut rows: Rows = vec![(
            format!("\ntasks per {d}"),
            reports.iter().map(|r| r.policy.clone()).collect(),
        )];
        for v in &values {
            let name = if v.is_empty() {
                "<none>".to_string()
            } else {
                v.clone()
            };
            rows.push((
                format!("  {name}"),
                reports
                    .iter()
                    .map(|r| {
                        r.balance
                            .iter()
                            .find(|b| &b.descriptor == d)
                            .and_then(|b| b.per_value.get(v))
                            .copied()
                            .unwrap_or(0)
                            .to_string()
                    })
                    .collect(),
            ));
        }
        table(&mut out, &rows);
    }

    let mut reasons: Vec<String> = Vec::new();
    for r in reports {
        for k in r.pending_reasons.keys() {
            if !reasons.contains(k) {
                reasons.push(k.clone());
            }
        }
    }
    if !reasons.is_empty() {
        let _ = writeln!(out, "\npending tasks by reason");
        for k in &reasons {
            let counts: Vec<String> = reports
                .iter()
                .map(|r| {
                    format!(
                        "{}={}",
                        r.policy,
                        r.pending_reasons.get(k).copied().unwrap_or(0)
                    )
                })
                .collect();
            let _ = writeln!(out, "  {}  {k}", counts.join(" "));
        }
    }
    out
}
