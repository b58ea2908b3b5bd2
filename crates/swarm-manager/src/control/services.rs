//! Services: create, inspect, update (and roll back), remove, list.

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;
use swarm_api::validate::validate_service_spec;
use tonic::Status;

use super::filters::matches;
use super::references::resolve;
use super::{ControlService, Local};

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// Checks a spec with everything that needs no store.
fn check(spec: &ServiceSpec) -> Result<(), Status> {
    validate_service_spec(spec).map_err(invalid)?;
    if let Some(p) = spec.task.as_ref().and_then(|t| t.placement.as_ref()) {
        swarm_scheduler::constraint::validate_placement(p).map_err(invalid)?;
    }
    Ok(())
}

/// Published ingress ports of `spec` another service already publishes.
fn port_conflict(
    services: &[std::sync::Arc<Service>],
    own_id: &str,
    spec: &ServiceSpec,
) -> Option<String> {
    let wanted: Vec<(u32, i32)> = spec
        .endpoint
        .iter()
        .flat_map(|e| &e.ports)
        .filter(|p| p.published_port != 0 && p.publish_mode() == PublishMode::Ingress)
        .map(|p| (p.published_port, p.protocol))
        .collect();
    for other in services.iter().filter(|s| s.id != own_id) {
        let used = other.endpoint.iter().flat_map(|e| &e.ports).chain(
            other
                .spec
                .iter()
                .flat_map(|s| s.endpoint.iter().flat_map(|e| &e.ports)),
        );
        for p in used {
            if p.publish_mode() == PublishMode::Ingress
                && wanted.contains(&(p.published_port, p.protocol))
            {
                let name = other
                    .spec
                    .as_ref()
                    .and_then(|s| s.annotations.as_ref())
                    .map_or("", |a| a.name.as_str());
                return Some(format!(
                    "port {}/{} is already published by service {name} ({})",
                    p.published_port,
                    p.protocol(),
                    other.id
                ));
            }
        }
    }
    None
}

fn same_mode(a: &Option<Mode>, b: &Option<Mode>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
        (None, None) => true,
        _ => false,
    }
}

impl ControlService {
    pub(crate) async fn create_service_local(
        &self,
        req: CreateServiceRequest,
    ) -> Local<CreateServiceResponse> {
        let mut spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
        check(&spec)?;
        let service = self
            .store
            .update(|tx| {
                resolve(tx, &mut spec).map_err(super::Fail::Status)?;
                if let Some(conflict) = port_conflict(&tx.all::<Service>(), "", &spec) {
                    return Err(super::Fail::Status(Status::invalid_argument(conflict)));
                }
                let service = Service {
                    id: swarm_api::id::new_id(),
                    spec: Some(spec),
                    spec_version: 1,
                    update_status: None,
                    ..Default::default()
                };
                tx.create(service).map_err(super::Fail::from)
            })
            .await?;
        Ok(CreateServiceResponse {
            service: Some(self.committed(&service.id)?),
        })
    }

    pub(crate) fn get_service_local(&self, req: GetServiceRequest) -> Local<GetServiceResponse> {
        let s = self
            .store
            .view()
            .lookup::<Service>(&req.service_id)
            .map_err(super::Fail::from)?;
        Ok(GetServiceResponse {
            service: Some((*s).clone()),
        })
    }

    pub(crate) fn list_services_local(
        &self,
        req: ListServicesRequest,
    ) -> Local<ListServicesResponse> {
        let view = self.store.view();
        let services = view
            .all::<Service>()
            .iter()
            .filter(|s| {
                matches(
                    req.filters.as_ref(),
                    &s.id,
                    s.spec.as_ref().and_then(|x| x.annotations.as_ref()),
                )
            })
            .map(|s| (**s).clone())
            .collect();
        Ok(ListServicesResponse { services })
    }

    pub(crate) async fn update_service_local(
        &self,
        req: UpdateServiceRequest,
    ) -> Local<UpdateServiceResponse> {
        if !req.rollback {
            let spec = req
                .spec
                .as_ref()
                .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
            check(spec)?;
        }
        let now = Timestamp::now();
        let service = self
            .store
            .update(|tx| {
                let current = tx.get::<Service>(&req.service_id).ok_or_else(|| {
                    super::Fail::Status(Status::not_found(format!(
                        "service {} not found",
                        req.service_id
                    )))
                })?;
                let mut s = (*current).clone();
                s.meta.get_or_insert_with(Default::default).version = req.service_version;
                if req.rollback {
                    let Some(previous) = s.previous_spec.take() else {
                        return Err(Status::failed_precondition(
                            "service has no previous spec to roll back to",
                        )
                        .into());
                    };
                    let current_spec = s.spec.replace(previous);
                    s.previous_spec = current_spec;
                    s.previous_spec_version = s.spec_version;
                    s.spec_version += 1;
                    s.update_status = Some(UpdateStatus {
                        state: UpdateState::RollbackStarted.into(),
                        started_at: Some(now),
                        message: "manually requested rollback".into(),
                        ..Default::default()
                    });
                } else {
                    let mut spec = req.spec.clone().unwrap_or_default();
                    resolve(tx, &mut spec).map_err(super::Fail::Status)?;
                    let old = s.spec.clone().unwrap_or_default();
                    let old_name = old
                        .annotations
                        .as_ref()
                        .map(|a| a.name.as_str())
                        .unwrap_or("");
                    let new_name = spec
                        .annotations
                        .as_ref()
                        .map(|a| a.name.as_str())
                        .unwrap_or("");
                    if old_name != new_name {
                        return Err(
                            Status::unimplemented("renaming services is not supported").into()
                        );
                    }
                    if !same_mode(&old.mode, &spec.mode) {
                        return Err(Status::unimplemented(
                            "changing the mode of a service is not supported",
                        )
                        .into());
                    }
                    if let Some(conflict) = port_conflict(&tx.all::<Service>(), &s.id, &spec) {
                        return Err(Status::invalid_argument(conflict).into());
                    }
                    s.previous_spec = Some(old);
                    s.previous_spec_version = s.spec_version;
                    s.spec = Some(spec);
                    s.spec_version += 1;
                    s.update_status = Some(UpdateStatus {
                        state: UpdateState::Updating.into(),
                        started_at: Some(now),
                        message: "update in progress".into(),
                        ..Default::default()
                    });
                }
                tx.update(s).map_err(super::Fail::from)
            })
            .await?;
        Ok(UpdateServiceResponse {
            service: Some(self.committed(&service.id)?),
        })
    }

    pub(crate) async fn remove_service_local(
        &self,
        req: RemoveServiceRequest,
    ) -> Local<RemoveServiceResponse> {
        self.store
            .update(|tx| {
                let s = tx.lookup::<Service>(&req.service_id)?;
                tx.delete::<Service>(&s.id).map(drop)
            })
            .await?;
        Ok(RemoveServiceResponse {})
    }
}
