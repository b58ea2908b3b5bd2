//! Resolving what a spec refers to (networks, secrets, configs) by id or
//! name, so stored specs always carry ids.

use swarm_api::v1::{Config, Network, Secret, ServiceSpec};
use swarm_store::{ReadTx, StoreError};
use tonic::Status;

fn missing(kind: &str, what: &str, e: StoreError) -> Status {
    match e {
        StoreError::NotFound { .. } => {
            Status::invalid_argument(format!("{kind} {what:?} not found"))
        }
        other => Status::invalid_argument(format!("{kind} {what:?}: {other}")),
    }
}

/// Rewrites network targets to network ids and fills secret and config
/// references' ids and names. Refuses references to objects that do not
/// exist and attaching to the ingress network explicitly.
pub(crate) fn resolve(view: &ReadTx, spec: &mut ServiceSpec) -> Result<(), Status> {
    let Some(task) = spec.task.as_mut() else {
        return Ok(());
    };
    for net in &mut task.networks {
        let n = view
            .lookup::<Network>(&net.target)
            .map_err(|e| missing("network", &net.target, e))?;
        if n.spec.as_ref().is_some_and(|s| s.ingress) {
            return Err(Status::invalid_argument(
                "a service cannot be attached to the ingress network explicitly: publish a port instead",
            ));
        }
        net.target.clone_from(&n.id);
    }
    if let Some(c) = task.container.as_mut() {
        for s in &mut c.secrets {
            let key = if s.secret_id.is_empty() {
                &s.secret_name
            } else {
                &s.secret_id
            };
            let found = view
                .lookup::<Secret>(key)
                .map_err(|e| missing("secret", key, e))?;
            s.secret_id.clone_from(&found.id);
            s.secret_name = found
                .spec
                .as_ref()
                .and_then(|x| x.annotations.as_ref())
                .map(|a| a.name.clone())
                .unwrap_or_default();
        }
        for r in &mut c.configs {
            let key = if r.config_id.is_empty() {
                &r.config_name
            } else {
                &r.config_id
            };
            let found = view
                .lookup::<Config>(key)
                .map_err(|e| missing("config", key, e))?;
            r.config_id.clone_from(&found.id);
            r.config_name = found
                .spec
                .as_ref()
                .and_then(|x| x.annotations.as_ref())
                .map(|a| a.name.clone())
                .unwrap_or_default();
        }
    }
    Ok(())
}
