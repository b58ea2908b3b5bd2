//! Making a task from a service, as SwarmKit's `NewTask` does.

use std::collections::BTreeMap;
use std::time::SystemTime;

use swarm_api::id::new_id;
use swarm_api::v1::{Annotations, JobIteration, Meta, Service, Task, TaskState, TaskStatus};

/// A new task of `service` for a replica slot (`slot` > 0) or a node
/// (`node_id` set, slot 0), with the service's current spec, desired to
/// reach `desired` (RUNNING, or COMPLETE for jobs).
pub(crate) fn new_task(
    service: &Service,
    slot: u64,
    node_id: &str,
    desired: TaskState,
    labels: BTreeMap<String, String>,
    now: SystemTime,
) -> Task {
    let spec = service.spec.clone().unwrap_or_default();
    let is_job = matches!(
        spec.mode,
        Some(swarm_api::v1::service_spec::Mode::ReplicatedJob(_))
            | Some(swarm_api::v1::service_spec::Mode::GlobalJob(_))
    );
    Task {
        id: new_id(),
        meta: Some(Meta {
            created_at: Some(now.into()),
            updated_at: Some(now.into()),
            ..Default::default()
        }),
        spec: spec.task.clone(),
        spec_version: service.spec_version,
        service_id: service.id.clone(),
        slot,
        node_id: node_id.to_string(),
        annotations: Some(Annotations {
            name: String::new(),
            labels,
        }),
        service_annotations: spec.annotations.clone(),
        status: Some(TaskStatus {
            state: TaskState::New.into(),
            timestamp: Some(now.into()),
            message: "created".into(),
            ..Default::default()
        }),
        desired_state: desired.into(),
        networks: Vec::new(),
        endpoint: service.endpoint.clone(),
        log_driver: spec.task.as_ref().and_then(|t| t.log_driver.clone()),
        assigned_generic_resources: Vec::new(),
        job_iteration: is_job.then_some(JobIteration {
            index: service.spec_version,
        }),
    }
}
