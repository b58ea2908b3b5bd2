//! The output of the tasks a worker holds, for log publishing: a runner
//! registers its task's log buffer when it makes the task's controller and
//! withdraws it when the task is removed; publishers look up the tasks a
//! subscription selects and are told (a version bump) when the set
//! changes, so a follower picks up tasks that start later.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use swarm_api::v1::{LogContext, Task};
use tokio::sync::watch;

use crate::exec::LogBuffer;

/// One task's output and where it comes from.
#[derive(Debug, Clone)]
pub struct LogSource {
    /// Service, node and task of the lines.
    pub context: LogContext,
    /// The task's output.
    pub buffer: LogBuffer,
}

/// The log sources of a worker's tasks. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct LogSources {
    sources: Arc<Mutex<BTreeMap<String, LogSource>>>,
    version: Arc<watch::Sender<u64>>,
}

impl Default for LogSources {
    fn default() -> Self {
        LogSources {
            sources: Arc::default(),
            version: Arc::new(watch::channel(0).0),
        }
    }
}

impl LogSources {
    /// Registers (or replaces) the output of `task`.
    pub(crate) fn add(&self, task: &Task, buffer: LogBuffer) {
        let context = LogContext {
            service_id: task.service_id.clone(),
            node_id: task.node_id.clone(),
            task_id: task.id.clone(),
        };
        self.sources
            .lock()
            .insert(task.id.clone(), LogSource { context, buffer });
        self.version.send_modify(|v| *v += 1);
    }

    /// Withdraws the output of the task with `id` (the task is removed).
    pub(crate) fn remove(&self, id: &str) {
        if self.sources.lock().remove(id).is_some() {
            self.version.send_modify(|v| *v += 1);
        }
    }

    /// Every registered source, by task id.
    pub(crate) fn all(&self) -> Vec<LogSource> {
        self.sources.lock().values().cloned().collect()
    }

    /// Changes whenever a source is added or withdrawn.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_come_and_go_with_a_version_bump() {
        let s = LogSources::default();
        let mut w = s.watch();
        let task = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            node_id: "n1".into(),
            ..Default::default()
        };
        s.add(&task, LogBuffer::new(64));
        assert!(w.has_changed().unwrap());
        w.borrow_and_update();
        let all = s.all();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].context.service_id, "s1");
        s.remove("t1");
        assert!(w.has_changed().unwrap());
        w.borrow_and_update();
        s.remove("t1");
        assert!(!w.has_changed().unwrap(), "nothing withdrawn twice");
        assert!(s.all().is_empty());
    }
}
