//! Networks: create, inspect, remove, list.

use swarm_api::v1::*;
use swarm_api::validate::validate_network_spec;
use swarm_store::By;
use tonic::Status;

use super::filters::matches;
use super::{ControlService, Fail, Local};

/// The driver a network gets when the spec names none.
pub(crate) const DEFAULT_DRIVER: &str = "overlay";

impl ControlService {
    pub(crate) async fn create_network_local(
        &self,
        req: CreateNetworkRequest,
    ) -> Local<CreateNetworkResponse> {
        let mut spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("a network spec is required"))?;
        validate_network_spec(&spec).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let driver = spec.driver_config.get_or_insert_with(Default::default);
        if driver.name.is_empty() {
            driver.name = DEFAULT_DRIVER.into();
        }
        let network = self
            .store
            .update(|tx| {
                if spec.ingress
                    && tx
                        .all::<Network>()
                        .iter()
                        .any(|n| n.spec.as_ref().is_some_and(|s| s.ingress))
                {
                    return Err(Fail::Status(Status::already_exists(
                        "an ingress network already exists",
                    )));
                }
                let n = Network {
                    id: swarm_api::id::new_id(),
                    spec: Some(spec),
                    ..Default::default()
                };
                tx.create(n).map_err(Fail::from)
            })
            .await?;
        Ok(CreateNetworkResponse {
            network: Some(self.committed(&network.id)?),
        })
    }

    pub(crate) fn get_network_local(&self, req: GetNetworkRequest) -> Local<GetNetworkResponse> {
        let n = self
            .store
            .view()
            .lookup::<Network>(&req.network_id)
            .map_err(Fail::from)?;
        Ok(GetNetworkResponse {
            network: Some((*n).clone()),
        })
    }

    pub(crate) fn list_networks_local(
        &self,
        req: ListNetworksRequest,
    ) -> Local<ListNetworksResponse> {
        let networks = self
            .store
            .view()
            .all::<Network>()
            .iter()
            .filter(|n| {
                matches(
                    req.filters.as_ref(),
                    &n.id,
                    n.spec.as_ref().and_then(|s| s.annotations.as_ref()),
                )
            })
            .map(|n| (**n).clone())
            .collect();
        Ok(ListNetworksResponse { networks })
    }

    pub(crate) async fn remove_network_local(
        &self,
        req: RemoveNetworkRequest,
    ) -> Local<RemoveNetworkResponse> {
        self.store
            .update(|tx| {
                let n = tx.lookup::<Network>(&req.network_id).map_err(Fail::from)?;
                let users: Vec<String> = tx
                    .find::<Service>(By::NetworkId(&n.id))
                    .map_err(Fail::from)?
                    .iter()
                    .map(|s| {
                        s.spec
                            .as_ref()
                            .and_then(|x| x.annotations.as_ref())
                            .map(|a| a.name.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                if !users.is_empty() {
                    return Err(Fail::Status(Status::failed_precondition(format!(
                        "network {} is in use by service(s): {}",
                        n.id,
                        users.join(", ")
                    ))));
                }
                let attached = tx
                    .find::<Task>(By::NetworkId(&n.id))
                    .map_err(Fail::from)?
                    .iter()
                    .any(|t| !t.state().is_terminal());
                if attached {
                    return Err(Fail::Status(Status::failed_precondition(format!(
                        "network {} still has running tasks attached",
                        n.id
                    ))));
                }
                tx.delete::<Network>(&n.id).map(drop).map_err(Fail::from)
            })
            .await?;
        Ok(RemoveNetworkResponse {})
    }
}
