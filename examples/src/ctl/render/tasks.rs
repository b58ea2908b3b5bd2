//! `service ps` and `stack ps`: tasks with their history per slot.

use std::collections::BTreeMap;
use std::time::SystemTime;

use swarm_api::EnumName;
use swarm_api::v1::Task;

use super::short_id;
use super::time::ago;
use crate::table::Table;

/// Names to show instead of ids.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Node id -> hostname (or node name).
    pub nodes: BTreeMap<String, String>,
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A task's slot name: `web.2` (replicated) or `web.<node id>` (global).
pub fn slot_name(t: &Task) -> String {
    let service = t
        .service_annotations
        .as_ref()
        .map_or("", |a| a.name.as_str());
    if t.slot != 0 {
        format!("{service}.{}", t.slot)
    } else {
        format!("{service}.{}", t.node_id)
    }
}

/// Tasks ordered as `service ps` lists them: by service, slot, then newest
/// first within a slot.
pub fn ordered(tasks: &[Task]) -> Vec<&Task> {
    let mut v: Vec<&Task> = tasks.iter().collect();
    let created = |t: &Task| {
        t.meta
            .as_ref()
            .and_then(|m| m.created_at.as_ref())
            .map_or(0, |c| c.as_unix_nanos())
    };
    v.sort_by(|a, b| {
        (slot_name(a), a.slot)
            .cmp(&(slot_name(b), b.slot))
            .then_with(|| created(b).cmp(&created(a)))
            .then_with(|| a.id.cmp(&b.id))
    });
    v
}

/// `service ps`: ID NAME IMAGE NODE DESIRED STATE CURRENT STATE ERROR.
/// Older tasks of a slot are shown under the newest as ` \_ name`.
pub fn task_table(tasks: &[Task], names: &Names, now: SystemTime) -> String {
    let mut t = Table::new([
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
    ]);
    let mut previous_slot = String::new();
    for task in ordered(tasks) {
        let slot = slot_name(task);
        let name = if slot == previous_slot {
            format!(" \\_ {slot}")
        } else {
            slot.clone()
        };
        previous_slot = slot;
        let image = task
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .map(|c| c.image.clone())
            .unwrap_or_default();
        let node = names
            .nodes
            .get(&task.node_id)
            .cloned()
            .unwrap_or_else(|| task.node_id.clone());
        let status = task.status.clone().unwrap_or_default();
        let current = format!(
            "{} {}",
            capitalized(task.state().short_name()),
            ago(status.timestamp.as_ref(), now)
        );
        let err = if status.err.is_empty() {
            String::new()
        } else {
            format!("\"{}\"", status.err.replace('\n', " "))
        };
        t.row([
            short_id(&task.id).to_string(),
            name,
            image,
            node,
            capitalized(task.desired_state().short_name()),
            current.trim_end().to_string(),
            err,
        ]);
    }
    t.render()
}
