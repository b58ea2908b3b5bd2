//! The workload simulator: replays a JSON-lines workload (nodes joining,
//! draining and leaving; services created, scaled and removed; tasks
//! failing; time passing) against one or more policies and reports the
//! placement quality of each, side by side.
//!
//! The `simulate` example is the command-line front end:
//! `cargo run --release -p swarm-scheduler --example simulate --
//! crates/swarm-scheduler/examples/workloads/zones.jsonl spread binpack`.
//! Two workloads ship beside it: `zones.jsonl` (10 nodes, GPUs, host
//! ports, a global service, a drain, failures, large tasks at the end) and
//! `churn.jsonl` (300 nodes over 3 regions × 4 zones, 60 services, node
//! losses, drains, failures, scaling). The format is described in
//! [`parse_workload`].
//!
//! ```
//! use swarm_scheduler::sim;
//!
//! let workload = sim::parse_workload(r#"
//! {"op":"add_node","id":"a1","cpus":2,"labels":{"zone":"a"}}
//! {"op":"add_node","id":"b1","cpus":2,"labels":{"zone":"b"}}
//! {"op":"create_service","name":"web","replicas":3,"cpus":1,"preferences":["node.labels.zone"]}
//! "#).unwrap();
//! let reports = sim::compare(&workload, &["spread", "binpack"]).unwrap();
//! assert_eq!(reports[0].placed, 3);
//! assert_eq!(reports[0].pending, 0);
//! println!("{}", sim::render(&reports));
//! ```

mod engine;
mod report;
mod workload;

pub use engine::Simulation;
pub use report::{LabelBalance, Report, render};
pub use workload::{
    Bytes, Event, GenericOffer, NodeDef, PlatformDef, PluginDef, ServiceDef, WorkloadError,
    parse_bytes, parse_workload,
};

use std::time::Instant;

use crate::policy::{Binpack, Spread};
use crate::scheduler::{ClusterScheduler, Scheduler};

/// The policies the simulator knows by name.
pub const POLICIES: &[&str] = &["spread", "binpack"];

/// A scheduler with SwarmKit's filters and the named policy.
pub fn scheduler_for(policy: &str) -> Option<Box<dyn Scheduler>> {
    match policy {
        "spread" => Some(Box::new(ClusterScheduler::builder().policy(Spread).build())),
        "binpack" => Some(Box::new(
            ClusterScheduler::builder().policy(Binpack).build(),
        )),
        _ => None,
    }
}

/// Replays a workload against one scheduler.
pub fn run(workload: &[Event], scheduler: Box<dyn Scheduler>) -> Report {
    let start = Instant::now();
    let mut sim = Simulation::new(scheduler);
    for e in workload {
        sim.apply(e);
    }
    Report::of(&sim, start.elapsed())
}

/// Replays a workload against each named policy; an unknown name is the error.
pub fn compare(workload: &[Event], policies: &[&str]) -> Result<Vec<Report>, String> {
    policies
        .iter()
        .map(|p| {
            scheduler_for(p)
                .map(|s| run(workload, s))
                .ok_or_else(|| format!("unknown policy {p:?} (known: {})", POLICIES.join(", ")))
        })
        .collect()
}
