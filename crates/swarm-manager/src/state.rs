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

/// The raft directory inside a manager's state directory.
pub const RAFT_DIR: &str = "raft";

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

    /// Forgets that this state directory holds a manager: removes
    /// `manager.json` and the raft directory (a demoted node's raft log is
    /// of no use: it was removed from the cluster's membership). The
    /// node's certificates stay.
    pub fn remove(dir: &Path) -> Result<(), ManagerError> {
        let p = path(dir);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ManagerError::State { path: p, source }),
        }
        let raft = dir.join(RAFT_DIR);
        match std::fs::remove_dir_all(&raft) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ManagerError::State { path: raft, source }),
        }
    }
}
