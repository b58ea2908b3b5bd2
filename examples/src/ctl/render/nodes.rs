//! `node ls`.

use swarm_api::EnumName;
use swarm_api::v1::{Node, NodeRole, Reachability};

use crate::table::Table;

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The name a node is shown by: its hostname, else its spec name, else
/// its id.
pub fn node_name(n: &Node) -> String {
    let hostname = n.description.as_ref().map_or("", |d| d.hostname.as_str());
    let name = n
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str());
    [hostname, name, n.id.as_str()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_string()
}

/// `Leader`, `Reachable`, `Unreachable`, or empty for workers.
pub fn manager_status(n: &Node) -> String {
    if n.role() != NodeRole::Manager {
        return String::new();
    }
    match &n.manager_status {
        Some(m) if m.leader => "Leader".into(),
        Some(m) if m.reachability() == Reachability::Reachable => "Reachable".into(),
        Some(m) if m.reachability() == Reachability::Unreachable => "Unreachable".into(),
        _ => "Unknown".into(),
    }
}

/// `node ls`: ID HOSTNAME STATUS AVAILABILITY MANAGER STATUS EXECUTOR.
/// `self_id`'s row is marked with `*`, as docker does.
pub fn node_table(nodes: &[Node], self_id: Option<&str>) -> String {
    let mut t = Table::new([
        "ID",
        "HOSTNAME",
        "STATUS",
        "AVAILABILITY",
        "MANAGER STATUS",
        "EXECUTOR",
    ]);
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by_key(|n| (node_name(n), n.id.clone()));
    for n in sorted {
        let id = if Some(n.id.as_str()) == self_id {
            format!("{} *", n.id)
        } else {
            n.id.clone()
        };
        let state = n.status.as_ref().map(|s| s.state()).unwrap_or_default();
        let availability = n
            .spec
            .as_ref()
            .map(|s| s.availability())
            .unwrap_or_default();
        t.row([
            id,
            node_name(n),
            capitalized(state.short_name()),
            capitalized(availability.short_name()),
            manager_status(n),
            n.description
                .as_ref()
                .map(|d| d.executor.clone())
                .unwrap_or_default(),
        ]);
    }
    t.render()
}
