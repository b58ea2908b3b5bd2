//! The cluster object: inspect (keys removed), update settings, rotate
//! join tokens.

use swarm_api::v1::*;
use swarm_api::validate::validate_cluster_spec;
use swarm_pki::JoinTokens;
use tonic::Status;

use super::filters::matches;
use super::{ControlService, Fail, Local};

/// The cluster as clients see it: every private key removed. Join tokens
/// stay: managers show them (`swarmctl cluster join-token`).
pub(crate) fn redact(mut c: Cluster) -> Cluster {
    if let Some(ca) = c.root_ca.as_mut() {
        ca.ca_key.clear();
        if let Some(r) = ca.root_rotation.as_mut() {
            r.ca_key.clear();
        }
    }
    if let Some(cfg) = c.spec.as_mut().and_then(|s| s.ca_config.as_mut()) {
        cfg.signing_ca_key.clear();
    }
    c.unlock_key.clear();
    for k in &mut c.network_bootstrap_keys {
        k.key.clear();
    }
    c
}

impl ControlService {
    pub(crate) fn get_cluster_local(&self, req: GetClusterRequest) -> Local<GetClusterResponse> {
        let c = self
            .store
            .view()
            .lookup::<Cluster>(&req.cluster_id)
            .map_err(Fail::from)?;
        Ok(GetClusterResponse {
            cluster: Some(redact((*c).clone())),
        })
    }

    pub(crate) fn list_clusters_local(
        &self,
        req: ListClustersRequest,
    ) -> Local<ListClustersResponse> {
        let clusters = self
            .store
            .view()
            .all::<Cluster>()
            .iter()
            .filter(|c| {
                matches(
                    req.filters.as_ref(),
                    &c.id,
                    c.spec.as_ref().and_then(|s| s.annotations.as_ref()),
                )
            })
            .map(|c| redact((**c).clone()))
            .collect();
        Ok(ListClustersResponse { clusters })
    }

    pub(crate) async fn update_cluster_local(
        &self,
        req: UpdateClusterRequest,
    ) -> Local<UpdateClusterResponse> {
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("a cluster spec is required"))?;
        validate_cluster_spec(&spec).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let rotation = req.rotation.unwrap_or_default();
        let updated = self
            .store
            .update(|tx| {
                let current = tx.get::<Cluster>(&req.cluster_id).ok_or_else(|| {
                    Fail::Status(Status::not_found(format!(
                        "cluster {} not found",
                        req.cluster_id
                    )))
                })?;
                let mut c = (*current).clone();
                c.meta.get_or_insert_with(Default::default).version = req.cluster_version;
                // Keys are never set through the spec of an update.
                let mut new_spec = spec.clone();
                if let (Some(new), Some(old)) = (
                    new_spec.ca_config.as_mut(),
                    current.spec.as_ref().and_then(|s| s.ca_config.as_ref()),
                ) && new.signing_ca_key.is_empty()
                {
                    new.signing_ca_key.clone_from(&old.signing_ca_key);
                }
                c.spec = Some(new_spec);
                if rotation.worker_join_token || rotation.manager_join_token {
                    let ca = c.root_ca.get_or_insert_with(Default::default);
                    let proto = ca.join_tokens.clone().unwrap_or_default();
                    let mut tokens = JoinTokens::from_proto(&proto).map_err(|e| {
                        Fail::Status(Status::internal(format!("stored join tokens: {e}")))
                    })?;
                    let mut rng = rand::rng();
                    if rotation.worker_join_token {
                        tokens.rotate_worker(&mut rng);
                    }
                    if rotation.manager_join_token {
                        tokens.rotate_manager(&mut rng);
                    }
                    ca.join_tokens = Some(tokens.to_proto());
                }
                if rotation.manager_unlock_key {
                    let mut key = vec![0u8; 32];
                    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
                    c.unlock_key = key;
                }
                tx.update(c).map_err(Fail::from)
            })
            .await?;
        Ok(UpdateClusterResponse {
            cluster: Some(redact(self.committed(&updated.id)?)),
        })
    }
}
