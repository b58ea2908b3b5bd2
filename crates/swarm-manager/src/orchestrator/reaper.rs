//! The task reaper: keeps at most the cluster's task history limit of
//! finished tasks per slot (SwarmKit's default 5), deletes tasks told to go
//! away once they stopped, and tells the tasks of deleted services to go.

use std::collections::BTreeMap;
use std::sync::Arc;

use swarm_api::v1::{Task, TaskState};

use super::plan::Group;
use super::slots::{Nodes, Role, SlotKey, created, role};

/// The history limit in force: negative keeps everything.
pub(crate) fn retention(view: &swarm_store::ReadTx) -> i64 {
    view.all::<swarm_api::v1::Cluster>()
        .first()
        .and_then(|c| c.spec.as_ref())
        .and_then(|s| s.orchestration.as_ref())
        .map_or(swarm_api::defaults::TASK_HISTORY_RETENTION, |o| {
            o.task_history_retention_limit
        })
}

/// Reaps the tasks of one service (`orphaned` when the service is gone).
pub(crate) fn reap(
    tasks: &[Arc<Task>],
    nodes: &Nodes,
    global: bool,
    orphaned: bool,
    limit: i64,
    g: &mut Group,
) {
    let mut history: BTreeMap<SlotKey, Vec<&Arc<Task>>> = BTreeMap::new();
    for t in tasks {
        let r = role(t, nodes);
        if orphaned && r != Role::Done {
            g.set_desired(t, TaskState::Remove);
            continue;
        }
        if r != Role::Done {
            continue;
        }
        // Also about to be: the changes this pass makes.
        if orphaned || t.desired_state() >= TaskState::Remove || pending_remove(g, t) {
            g.deletes.push(t.id.clone());
            continue;
        }
        history.entry(SlotKey::of(t, global)).or_default().push(t);
    }
    let Ok(limit) = usize::try_from(limit) else {
        return;
    };
    for (_, mut done) in history {
        if done.len() <= limit {
            continue;
        }
        done.sort_by_key(|t| std::cmp::Reverse(created(t)));
        for t in &done[limit..] {
            g.deletes.push(t.id.clone());
        }
    }
}

fn pending_remove(g: &Group, t: &Task) -> bool {
    g.desired_for(&t.id).is_some_and(|s| s >= TaskState::Remove)
}
