//! Secrets and configs assigned to the node, as controllers see them.

use std::collections::HashMap;

use swarm_api::v1::{Config, ContainerSpec, Secret, Task};

/// The secrets and configs the node holds, by id. Never logged: `Debug`
/// shows ids only.
#[derive(Clone, Default)]
pub struct Dependencies {
    /// Secrets by id.
    pub secrets: HashMap<String, Secret>,
    /// Configs by id.
    pub configs: HashMap<String, Config>,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependencies")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("configs", &self.configs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Dependencies {
    /// The task's container spec (empty when it has none) and the part of
    /// `self` it refers to: what a controller keeps.
    pub fn for_task(&self, task: &Task) -> (ContainerSpec, Dependencies) {
        let spec = task
            .spec
            .as_ref()
            .and_then(|s| s.container.clone())
            .unwrap_or_default();
        let mut mine = Dependencies::default();
        for r in &spec.secrets {
            if let Some(s) = self.secrets.get(&r.secret_id) {
                mine.secrets.insert(r.secret_id.clone(), s.clone());
            }
        }
        for r in &spec.configs {
            if let Some(c) = self.configs.get(&r.config_id) {
                mine.configs.insert(r.config_id.clone(), c.clone());
            }
        }
        (spec, mine)
    }

    /// The secret with `id`, or an error naming it.
    pub fn secret(&self, id: &str) -> Result<&Secret, super::ExecError> {
        self.secrets
            .get(id)
            .ok_or_else(|| super::ExecError::MissingDependency {
                kind: "secret",
                id: id.to_string(),
            })
    }

    /// The config with `id`, or an error naming it.
    pub fn config(&self, id: &str) -> Result<&Config, super::ExecError> {
        self.configs
            .get(id)
            .ok_or_else(|| super::ExecError::MissingDependency {
                kind: "config",
                id: id.to_string(),
            })
    }
}
