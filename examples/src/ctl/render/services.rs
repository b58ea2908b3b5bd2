//! `service ls`, and the replica counts it shows.

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::{Service, Task, TaskState};

use super::short_id;
use crate::ctl::flags::{mode_name, port_text};
use crate::table::Table;

/// One row of `service ls`: a service and its counts.
#[derive(Debug, Clone)]
pub struct ServiceRow<'a> {
    /// The service.
    pub service: &'a Service,
    /// Its counts.
    pub counts: ReplicaCounts,
}

/// Tasks running against tasks wanted, and (for jobs) completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaCounts {
    /// Tasks running that should be.
    pub running: u64,
    /// Tasks wanted: replicas, or one per node for global services.
    pub desired: u64,
    /// For jobs: completed tasks and the completions wanted.
    pub completed: Option<(u64, u64)>,
}

impl ReplicaCounts {
    /// Counts `tasks` (any service's; others are ignored) for `service`.
    pub fn of(service: &Service, tasks: &[Task]) -> Self {
        let own = || tasks.iter().filter(|t| t.service_id == service.id);
        let running = own()
            .filter(|t| t.desired_state() <= TaskState::Running && t.state() == TaskState::Running)
            .count() as u64;
        let completed = || {
            own()
                .filter(|t| {
                    t.state() == TaskState::Complete && t.spec_version == service.spec_version
                })
                .count() as u64
        };
        match service.spec.as_ref().and_then(|s| s.mode.as_ref()) {
            Some(Mode::Replicated(r)) => ReplicaCounts {
                running,
                desired: r.replicas,
                completed: None,
            },
            Some(Mode::Global(_)) | None => {
                let mut nodes: Vec<&str> = own()
                    .filter(|t| t.desired_state() <= TaskState::Running)
                    .map(|t| t.node_id.as_str())
                    .filter(|n| !n.is_empty())
                    .collect();
                nodes.sort_unstable();
                nodes.dedup();
                ReplicaCounts {
                    running,
                    desired: nodes.len() as u64,
                    completed: None,
                }
            }
            Some(Mode::ReplicatedJob(j)) => ReplicaCounts {
                running,
                desired: j.max_concurrent.max(1).min(j.total_completions.max(1)),
                completed: Some((
                    completed(),
                    j.total_completions.max(j.max_concurrent).max(1),
                )),
            },
            Some(Mode::GlobalJob(_)) => {
                let all = own()
                    .filter(|t| t.spec_version == service.spec_version)
                    .count() as u64;
                ReplicaCounts {
                    running,
                    desired: all.saturating_sub(completed()),
                    completed: Some((completed(), all)),
                }
            }
        }
    }

    /// `2/3`, or `1/1 (3/5 completed)` for jobs.
    pub fn text(&self) -> String {
        match self.completed {
            Some((done, total)) => {
                format!(
                    "{}/{} ({done}/{total} completed)",
                    self.running, self.desired
                )
            }
            None => format!("{}/{}", self.running, self.desired),
        }
    }
}

/// The service's name.
pub fn service_name(s: &Service) -> &str {
    s.spec
        .as_ref()
        .and_then(|x| x.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

/// `service ls`: ID NAME MODE REPLICAS IMAGE PORTS.
pub fn service_table(rows: &[ServiceRow<'_>]) -> String {
    let mut t = Table::new(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]);
    for r in rows {
        let s = r.service;
        let spec = s.spec.clone().unwrap_or_default();
        let image = spec
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .map(|c| c.image.clone())
            .unwrap_or_default();
        // Allocated ports carry the published port the manager picked.
        let ports = s
            .endpoint
            .as_ref()
            .filter(|e| !e.ports.is_empty())
            .map(|e| e.ports.clone())
            .or_else(|| spec.endpoint.as_ref().map(|e| e.ports.clone()))
            .unwrap_or_default();
        let ports: Vec<String> = ports.iter().map(port_text).collect();
        t.row([
            short_id(&s.id).to_string(),
            service_name(s).to_string(),
            mode_name(spec.mode.as_ref()).to_string(),
            r.counts.text(),
            image,
            ports.join(", "),
        ]);
    }
    t.render()
}
