//! Secrets and configs: create, inspect and list (secret data is never
//! returned), update labels (data is immutable), remove when unused.

use swarm_api::v1::*;
use swarm_api::validate::{validate_config_spec, validate_secret_spec};
use tonic::Status;

use super::filters::matches;
use super::{ControlService, Fail, Local};

fn redact(mut s: Secret) -> Secret {
    if let Some(spec) = s.spec.as_mut() {
        spec.data.clear();
    }
    s
}

/// Names of services whose tasks use a secret or config.
fn users(
    services: &[std::sync::Arc<Service>],
    uses: impl Fn(&ContainerSpec) -> bool,
) -> Vec<String> {
    services
        .iter()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|x| x.task.as_ref())
                .and_then(|t| t.container.as_ref())
                .is_some_and(&uses)
        })
        .map(|s| {
            s.spec
                .as_ref()
                .and_then(|x| x.annotations.as_ref())
                .map(|a| a.name.clone())
                .unwrap_or_default()
        })
        .collect()
}

impl ControlService {
    pub(crate) async fn create_secret_local(
        &self,
        req: CreateSecretRequest,
    ) -> Local<CreateSecretResponse> {
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("a secret spec is required"))?;
        validate_secret_spec(&spec).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let s = Secret {
            id: swarm_api::id::new_id(),
            spec: Some(spec),
            ..Default::default()
        };
        let created = self
            .store
            .update(|tx| tx.create(s))
            .await
            .map_err(Fail::from)?;
        Ok(CreateSecretResponse {
            secret: Some(redact(self.committed(&created.id)?)),
        })
    }

    pub(crate) fn get_secret_local(&self, req: GetSecretRequest) -> Local<GetSecretResponse> {
        let s = self
            .store
            .view()
            .lookup::<Secret>(&req.secret_id)
            .map_err(Fail::from)?;
        Ok(GetSecretResponse {
            secret: Some(redact((*s).clone())),
        })
    }

    pub(crate) fn list_secrets_local(&self, req: ListSecretsRequest) -> Local<ListSecretsResponse> {
        let secrets = self
            .store
            .view()
            .all::<Secret>()
            .iter()
            .filter(|s| !s.internal)
            .filter(|s| {
                matches(
                    req.filters.as_ref(),
                    &s.id,
                    s.spec.as_ref().and_then(|x| x.annotations.as_ref()),
                )
            })
            .map(|s| redact((**s).clone()))
            .collect();
        Ok(ListSecretsResponse { secrets })
    }

    pub(crate) async fn update_secret_local(
        &self,
        req: UpdateSecretRequest,
    ) -> Local<UpdateSecretResponse> {
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("a secret spec is required"))?;
        let updated = self
            .store
            .update(|tx| {
                let current = tx.get::<Secret>(&req.secret_id).ok_or_else(|| {
                    Fail::Status(Status::not_found(format!("secret {} not found", req.secret_id)))
                })?;
                let old = current.spec.clone().unwrap_or_default();
                let same_name = old.annotations.as_ref().map(|a| &a.name) == spec.annotations.as_ref().map(|a| &a.name);
                if !same_name || (!spec.data.is_empty() && spec.data != old.data) {
                    return Err(Fail::Status(Status::invalid_argument(
                        "only the labels of a secret can be updated: create a new secret to change its name or data",
                    )));
                }
                let mut s = (*current).clone();
                s.meta.get_or_insert_with(Default::default).version = req.secret_version;
                s.spec = Some(SecretSpec { annotations: spec.annotations.clone(), ..old });
                tx.update(s).map_err(Fail::from)
            })
            .await?;
        Ok(UpdateSecretResponse {
            secret: Some(redact(self.committed(&updated.id)?)),
        })
    }

    pub(crate) async fn remove_secret_local(
        &self,
        req: RemoveSecretRequest,
    ) -> Local<RemoveSecretResponse> {
        self.store
            .update(|tx| {
                let s = tx.lookup::<Secret>(&req.secret_id).map_err(Fail::from)?;
                let users = users(&tx.all::<Service>(), |c| {
                    c.secrets.iter().any(|r| r.secret_id == s.id)
                });
                if !users.is_empty() {
                    return Err(Fail::Status(Status::failed_precondition(format!(
                        "secret {} is in use by service(s): {}",
                        s.id,
                        users.join(", ")
                    ))));
                }
                tx.delete::<Secret>(&s.id).map(drop).map_err(Fail::from)
            })
            .await?;
        Ok(RemoveSecretResponse {})
    }

    pub(crate) async fn create_config_local(
        &self,
        req: CreateConfigRequest,
    ) -> Local<CreateConfigResponse> {
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("a config spec is required"))?;
        validate_config_spec(&spec).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let c = Config {
            id: swarm_api::id::new_id(),
            spec: Some(spec),
            ..Default::default()
        };
        let created = self
            .store
            .update(|tx| tx.create(c))
            .await
            .map_err(Fail::from)?;
        Ok(CreateConfigResponse {
            config: Some(self.committed(&created.id)?),
        })
    }

    pub(crate) fn get_config_local(&self, req: GetConfigRequest) -> Local<GetConfigResponse> {
        let c = self
            .store
            .view()
            .lookup::<Config>(&req.config_id)
            .map_err(Fail::from)?;
        Ok(GetConfigResponse {
            config: Some((*c).clone()),
        })
    }

    pub(crate) fn list_configs_local(&self, req: ListConfigsRequest) -> Local<ListConfigsResponse> {
        let configs = self
            .store
            .view()
            .all::<Config>()
            .iter()
            .filter(|c| {
                matches(
                    req.filters.as_ref(),
                    &c.id,
                    c.spec.as_ref().and_then(|x| x.annotations.as_ref()),
                )
            })
            .map(|c| (**c).clone())
            .collect();
        Ok(ListConfigsResponse { configs })
    }

    pub(crate) async fn update_config_local(
        &self,
        req: UpdateConfigRequest,
    ) -> Local<UpdateConfigResponse> {
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("a config spec is required"))?;
        let updated = self
            .store
            .update(|tx| {
                let current = tx.get::<Config>(&req.config_id).ok_or_else(|| {
                    Fail::Status(Status::not_found(format!("config {} not found", req.config_id)))
                })?;
                let old = current.spec.clone().unwrap_or_default();
                let same_name = old.annotations.as_ref().map(|a| &a.name) == spec.annotations.as_ref().map(|a| &a.name);
                if !same_name || (!spec.data.is_empty() && spec.data != old.data) {
                    return Err(Fail::Status(Status::invalid_argument(
                        "only the labels of a config can be updated: create a new config to change its name or data",
                    )));
                }
                let mut c = (*current).clone();
                c.meta.get_or_insert_with(Default::default).version = req.config_version;
                c.spec = Some(ConfigSpec { annotations: spec.annotations.clone(), ..old });
                tx.update(c).map_err(Fail::from)
            })
            .await?;
        Ok(UpdateConfigResponse {
            config: Some(self.committed(&updated.id)?),
        })
    }

    pub(crate) async fn remove_config_local(
        &self,
        req: RemoveConfigRequest,
    ) -> Local<RemoveConfigResponse> {
        self.store
            .update(|tx| {
                let c = tx.lookup::<Config>(&req.config_id).map_err(Fail::from)?;
                let users = users(&tx.all::<Service>(), |s| {
                    s.configs.iter().any(|r| r.config_id == c.id)
                });
                if !users.is_empty() {
                    return Err(Fail::Status(Status::failed_precondition(format!(
                        "config {} is in use by service(s): {}",
                        c.id,
                        users.join(", ")
                    ))));
                }
                tx.delete::<Config>(&c.id).map(drop).map_err(Fail::from)
            })
            .await?;
        Ok(RemoveConfigResponse {})
    }
}
