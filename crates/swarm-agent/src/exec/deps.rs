//! Secrets and configs assigned to the node, as controllers see them.

use std::collections::HashMap;

use swarm_api::v1::{Config, Secret};

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
