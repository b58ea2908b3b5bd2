//! `service logs`: each line prefixed like the docker CLI's,
//! `web.1.<task id>@<node> | text` (the task id cut to 12 characters, the
//! node by hostname), prefixes padded to a common width so the text lines
//! up.

use std::collections::BTreeMap;

use swarm_api::v1::{LogMessage, Task};

use super::short_id;
use super::tasks::{Names, slot_name};

/// Turns log messages into lines. Learns tasks and nodes as they come.
#[derive(Debug, Clone, Default)]
pub struct LogLines {
    tasks: BTreeMap<String, String>,
    names: Names,
    width: usize,
    timestamps: bool,
}

impl LogLines {
    /// Lines for the tasks and nodes known so far.
    pub fn new(tasks: &[Task], names: Names) -> Self {
        let mut l = LogLines {
            tasks: BTreeMap::new(),
            names,
            width: 0,
            timestamps: false,
        };
        for t in tasks {
            l.add_task(t);
        }
        l
    }

    /// Puts each line's time (RFC 3339, nanoseconds, UTC) before its text,
    /// as `docker service logs --timestamps` does.
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// True when lines of the task with `id` can be named.
    pub fn knows_task(&self, id: &str) -> bool {
        self.tasks.contains_key(id)
    }

    /// True when the node with `id` can be named.
    pub fn knows_node(&self, id: &str) -> bool {
        self.names.nodes.contains_key(id)
    }

    /// Learns a task (e.g. one started after the command began).
    pub fn add_task(&mut self, task: &Task) {
        let name = format!("{}.{}", slot_name(task), short_id(&task.id));
        let width = self.prefix_of(&name, &task.node_id).chars().count();
        self.width = self.width.max(width);
        self.tasks.insert(task.id.clone(), name);
    }

    /// Learns the nodes' names again.
    pub fn set_names(&mut self, names: Names) {
        self.names = names;
    }

    fn prefix_of(&self, task_name: &str, node_id: &str) -> String {
        let node = self
            .names
            .nodes
            .get(node_id)
            .map_or(node_id, String::as_str);
        format!("{task_name}@{node}")
    }

    /// The line for `m` (without a newline): prefix, `|`, text.
    pub fn line(&mut self, m: &LogMessage) -> String {
        let ctx = m.context.clone().unwrap_or_default();
        let task = self
            .tasks
            .get(&ctx.task_id)
            .cloned()
            .unwrap_or_else(|| short_id(&ctx.task_id).to_string());
        let prefix = self.prefix_of(&task, &ctx.node_id);
        self.width = self.width.max(prefix.chars().count());
        let text = String::from_utf8_lossy(&m.data);
        let text = text.trim_end_matches(['\n', '\r']);
        let width = self.width;
        match (&m.timestamp, self.timestamps) {
            (Some(ts), true) => {
                let at = humantime::format_rfc3339_nanos(ts.to_system_time());
                format!("{prefix:<width$} | {at} {text}")
            }
            (None, true) => format!("{prefix:<width$} | - {text}"),
            (_, false) => format!("{prefix:<width$} | {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_api::v1::{Annotations, LogContext};

    fn task(id: &str, slot: u64, node: &str) -> Task {
        Task {
            id: id.into(),
            slot,
            node_id: node.into(),
            service_annotations: Some(Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn msg(task: &str, node: &str, text: &str) -> LogMessage {
        LogMessage {
            context: Some(LogContext {
                service_id: "svc".into(),
                node_id: node.into(),
                task_id: task.into(),
            }),
            data: text.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn lines_are_prefixed_like_docker() {
        let names = Names {
            nodes: BTreeMap::from([
                ("n1".to_string(), "worker-1".to_string()),
                ("n2".to_string(), "w2".to_string()),
            ]),
        };
        let tasks = [
            task("abcdefghijklmnopqrstuvwxy", 1, "n1"),
            task("0123456789abcdefghijklmno", 2, "n2"),
        ];
        let mut l = LogLines::new(&tasks, names);
        assert_eq!(
            l.line(&msg("abcdefghijklmnopqrstuvwxy", "n1", "hello\n")),
            "web.1.abcdefghijkl@worker-1 | hello"
        );
        assert_eq!(
            l.line(&msg("0123456789abcdefghijklmno", "n2", "hi")),
            "web.2.0123456789ab@w2       | hi"
        );
        // A task not known yet: its short id, until it is learned.
        assert!(!l.knows_task("zzzzzzzzzzzzzzzz"));
        assert_eq!(
            l.line(&msg("zzzzzzzzzzzzzzzz", "n1", "x")),
            "zzzzzzzzzzzz@worker-1       | x"
        );
        l.add_task(&task("zzzzzzzzzzzzzzzz", 3, "n1"));
        assert_eq!(
            l.line(&msg("zzzzzzzzzzzzzzzz", "n1", "x")),
            "web.3.zzzzzzzzzzzz@worker-1 | x"
        );
    }

    #[test]
    fn timestamps_come_after_the_bar() {
        let tasks = [task("abcdefghijklmnopqrstuvwxy", 1, "n1")];
        let mut l = LogLines::new(&tasks, Names::default()).timestamps(true);
        let mut m = msg("abcdefghijklmnopqrstuvwxy", "n1", "hello\n");
        m.timestamp = Some(swarm_api::v1::Timestamp {
            seconds: 1_800_000_000,
            nanos: 5,
        });
        assert_eq!(
            l.line(&m),
            "web.1.abcdefghijkl@n1 | 2027-01-15T08:00:00.000000005Z hello"
        );
    }
}
