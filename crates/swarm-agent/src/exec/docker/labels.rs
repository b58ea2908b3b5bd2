//! The labels the Docker executor puts on every task container, so that
//! a restarted agent (or an operator) finds a task's container:
//! `docker ps --filter label=swarm-rs.task.id=<id>`.
//!
//! They have their own prefix, not Docker swarm mode's
//! `com.docker.swarm.*`, so that an engine running its own swarm mode
//! never mistakes them for its tasks.

use std::collections::HashMap;

use swarm_api::v1::Task;

/// The task's id.
pub const TASK_ID: &str = "swarm-rs.task.id";
/// The container's name (`<service>.<slot>.<task id>`).
pub const TASK_NAME: &str = "swarm-rs.task.name";
/// The service's id.
pub const SERVICE_ID: &str = "swarm-rs.service.id";
/// The service's name.
pub const SERVICE_NAME: &str = "swarm-rs.service.name";
/// The node the task was assigned to.
pub const NODE_ID: &str = "swarm-rs.node.id";
/// The slot of a replicated service's task.
pub const SLOT: &str = "swarm-rs.task.slot";
/// What a container of the task is for: [`SANDBOX_ROLE`] on its network
/// sandbox; absent on the task's own container.
pub const ROLE: &str = "swarm-rs.task.role";
/// The [`ROLE`] of a task's network sandbox container.
pub const SANDBOX_ROLE: &str = "sandbox";

/// The container's labels: the spec's own, then the swarm labels (which
/// win over a spec label of the same name).
pub(super) fn for_task(task: &Task, name: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = task
        .spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map(|c| c.labels.clone().into_iter().collect())
        .unwrap_or_default();
    labels.insert(TASK_ID.into(), task.id.clone());
    labels.insert(TASK_NAME.into(), name.to_string());
    let service_name = task
        .service_annotations
        .as_ref()
        .map(|a| a.name.as_str())
        .unwrap_or_default();
    for (key, value) in [
        (SERVICE_ID, task.service_id.as_str()),
        (SERVICE_NAME, service_name),
        (NODE_ID, task.node_id.as_str()),
    ] {
        if !value.is_empty() {
            labels.insert(key.into(), value.to_string());
        }
    }
    if task.slot > 0 {
        labels.insert(SLOT.into(), task.slot.to_string());
    }
    labels
}

/// The labels of the task's network sandbox container `name`: the swarm
/// labels (not the spec's) and [`ROLE`].
pub(super) fn for_sandbox(task: &Task, name: &str) -> HashMap<String, String> {
    let mut labels = for_task(
        &Task {
            spec: None,
            ..task.clone()
        },
        name,
    );
    labels.insert(ROLE.into(), SANDBOX_ROLE.into());
    labels
}

/// True when `labels` are a network sandbox's.
pub(super) fn is_sandbox(labels: Option<&HashMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(ROLE))
        .is_some_and(|r| r == SANDBOX_ROLE)
}

/// The engine's filter selecting the containers of `task_id`.
pub(super) fn task_filter(task_id: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{TASK_ID}={task_id}")])])
}
