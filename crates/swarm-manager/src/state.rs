//! What a manager remembers across restarts besides raft and certificates.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ManagerError;

/// `manager.json` in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerState {
    /// This node's id (the CN of its certificate).
    pub node_id: String,
    /// Its raft id.
    pub raft_id: u64,
    /// The cluster's id.
    pub cluster_id: String,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("manager.json")
}

impl ManagerState {
    /// Reads the state; `None` for a fresh directory.
    pub fn load(dir: &Path) -> Result<Option<ManagerState>, ManagerError> {
        let p = path(dir);
        match std::fs::read(&p) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| ManagerError::State {
                        path: p,
                        source: std::io::Error::other(e.to_string()),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ManagerError::State { path: p, source }),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, dir: &Path) -> Result<(), ManagerError> {
        let p = path(dir);
        let json = serde_json::to_vec_pretty(self).map_err(|e| ManagerError::State {
            path: p.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        swarm_pki::write_atomic(&p, &json, 0o600).map_err(|e| ManagerError::State {
            path: p.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}
