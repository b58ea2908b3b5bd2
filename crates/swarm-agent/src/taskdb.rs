//! The agent's local task database (redb): every task assigned to the
//! node with the status the agent last observed, so a restarted agent
//! neither loses nor starts twice what it was running.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use swarm_api::v1::Task;

/// Task id -> protobuf-encoded [`Task`].
const TASKS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tasks");

/// Why the task database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskDbError {
    /// The database could not be opened or written.
    #[error("task database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: Box<redb::Error>,
    },
    /// A stored task does not decode.
    #[error("task database {path}: task {id}: {source}")]
    Decode {
        /// The database file.
        path: PathBuf,
        /// The key.
        id: String,
        /// The error.
        source: prost::DecodeError,
    },
    /// The blocking worker thread failed.
    #[error("task database worker: {0}")]
    Join(String),
}

/// The database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TaskDb {
    db: Arc<Database>,
    path: PathBuf,
}

impl TaskDb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<TaskDb, TaskDbError> {
        let err = |e: redb::Error| TaskDbError::Db {
            path: path.to_path_buf(),
            source: Box::new(e),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(redb::Error::Io(e)))?;
        }
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let tx = db.begin_write().map_err(|e| err(e.into()))?;
        tx.open_table(TASKS).map_err(|e| err(e.into()))?;
        tx.commit().map_err(|e| err(e.into()))?;
        Ok(TaskDb {
            db: Arc::new(db),
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> TaskDbError {
        TaskDbError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// Every stored task.
    pub fn all(&self) -> Result<Vec<Task>, TaskDbError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(TASKS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let task = Task::decode(v.value()).map_err(|source| TaskDbError::Decode {
                path: self.path.clone(),
                id: k.value().to_string(),
                source,
            })?;
            out.push(task);
        }
        Ok(out)
    }

    fn put_blocking(&self, task: &Task) -> Result<(), TaskDbError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(TASKS).map_err(|e| self.err(e))?;
            table
                .insert(task.id.as_str(), task.encode_to_vec().as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn delete_blocking(&self, id: &str) -> Result<(), TaskDbError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(TASKS).map_err(|e| self.err(e))?;
            table.remove(id).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Stores `task` (durably, before returning).
    pub async fn put(&self, task: Task) -> Result<(), TaskDbError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.put_blocking(&task))
            .await
            .map_err(|e| TaskDbError::Join(e.to_string()))?
    }

    /// Forgets the task with `id`.
    pub async fn delete(&self, id: String) -> Result<(), TaskDbError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.delete_blocking(&id))
            .await
            .map_err(|e| TaskDbError::Join(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("swarm-agent-taskdb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("tasks.redb");
        let db = TaskDb::open(&path).unwrap();
        for id in ["a", "b"] {
            db.put(Task {
                id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        db.delete("a".into()).await.unwrap();
        drop(db);
        let db = TaskDb::open(&path).unwrap();
        let ids: Vec<String> = db.all().unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["b"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
