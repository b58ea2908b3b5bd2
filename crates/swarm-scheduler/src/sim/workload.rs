//! The workload file: one JSON object per line, each an event with an `op`.
//!
//! ```text
//! {"op":"add_node","id":"n1","cpus":4,"memory":"8GiB","labels":{"zone":"a"}}
//! {"op":"create_service","name":"web","replicas":6,"cpus":0.5,"memory":"256MiB",
//!  "constraints":["node.labels.zone!=c"],"preferences":["node.labels.zone"]}
//! {"op":"fail_tasks","service":"web","count":2}
//! {"op":"advance","seconds":60}
//! {"op":"drain_node","id":"n1"}
//! {"op":"scale_service","name":"web","replicas":10}
//! {"op":"remove_service","name":"web"}
//! {"op":"remove_node","id":"n1"}
//! ```
//!
//! Blank lines and lines starting with `#` are skipped. Other events:
//! `pause_node`, `activate_node`, `node_down`, `node_up`. Nodes take
//! `cpus`, `memory`, `labels`, `engine_labels`, `role`, `os`, `arch`,
//! `plugins`, `generic` (`{"gpu":["UUID1","UUID2"],"ssd":4}`) and `addr`;
//! services take `replicas` or `global`, `cpus`, `memory`, `generic`
//! (`{"gpu":1}`), `constraints`, `preferences` (spread descriptors),
//! `max_replicas`, `platforms`, `host_ports` and `networks` (driver names).

use std::collections::BTreeMap;

use serde::Deserialize;

/// A size in bytes: a number, or text like `512MiB`, `2G`, `1.5GiB`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes(pub i64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Bytes(n)),
            Raw::Text(t) => parse_bytes(&t).map(Bytes).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `512MiB`, `2G`, `1024`, `1.5GiB` into bytes (K/M/G/T are powers
/// of 1000, Ki/Mi/Gi/Ti of 1024; a trailing `B` is optional).
pub fn parse_bytes(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 512MiB)"))?;
    let unit = unit.trim().trim_end_matches(['B', 'b']);
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        "ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}")),
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > i64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(v as i64)
}

/// A generic resource a node offers: a list of names, or a count.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum GenericOffer {
    /// Named units, e.g. GPU UUIDs.
    Named(Vec<String>),
    /// A count of units.
    Count(i64),
}

/// A plugin on a node's engine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDef {
    /// `Network`, `Volume` or `Log`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name.
    pub name: String,
}

/// A node to add.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    /// Node id.
    pub id: String,
    /// Host name (default: the id).
    #[serde(default)]
    pub hostname: Option<String>,
    /// CPUs (fractional allowed).
    #[serde(default)]
    pub cpus: f64,
    /// Memory.
    #[serde(default)]
    pub memory: Bytes,
    /// Node labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Engine labels.
    #[serde(default)]
    pub engine_labels: BTreeMap<String, String>,
    /// `worker` (default) or `manager`.
    #[serde(default)]
    pub role: Option<String>,
    /// OS (default `linux`).
    #[serde(default)]
    pub os: Option<String>,
    /// Architecture (default `x86_64`).
    #[serde(default)]
    pub arch: Option<String>,
    /// Engine plugins.
    #[serde(default)]
    pub plugins: Vec<PluginDef>,
    /// Generic resources by kind.
    #[serde(default)]
    pub generic: BTreeMap<String, GenericOffer>,
    /// Address (for `node.ip` constraints).
    #[serde(default)]
    pub addr: Option<String>,
}

/// A platform a service's image supports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformDef {
    /// OS (empty: any).
    #[serde(default)]
    pub os: String,
    /// Architecture (empty: any).
    #[serde(default)]
    pub arch: String,
}

/// A service to create.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    /// Service name.
    pub name: String,
    /// Replicas (ignored for global services).
    #[serde(default)]
    pub replicas: u64,
    /// One task per eligible node instead of replicas.
    #[serde(default)]
    pub global: bool,
    /// CPUs reserved per task.
    #[serde(default)]
    pub cpus: f64,
    /// Memory reserved per task.
    #[serde(default)]
    pub memory: Bytes,
    /// Generic resources reserved per task, by kind.
    #[serde(default)]
    pub generic: BTreeMap<String, i64>,
    /// Placement constraints.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Spread descriptors, outermost first (`node.labels.zone`).
    #[serde(default)]
    pub preferences: Vec<String>,
    /// At most this many tasks per node (0: no limit).
    #[serde(default)]
    pub max_replicas: u64,
    /// Supported platforms.
    #[serde(default)]
    pub platforms: Vec<PlatformDef>,
    /// Host-mode published TCP ports.
    #[serde(default)]
    pub host_ports: Vec<u32>,
    /// Network drivers the tasks attach through (need the plugin).
    #[serde(default)]
    pub networks: Vec<String>,
}

/// One line of a workload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Event {
    /// Add (or replace) a node.
    AddNode(NodeDef),
    /// Remove a node; its tasks are rescheduled.
    RemoveNode {
        /// Node id.
        id: String,
    },
    /// Drain a node: its tasks move elsewhere.
    DrainNode {
        /// Node id.
        id: String,
    },
    /// Pause a node: no new tasks, existing ones stay.
    PauseNode {
        /// Node id.
        id: String,
    },
    /// Make a node active again.
    ActivateNode {
        /// Node id.
        id: String,
    },
    /// The node stops heartbeating (down): its tasks are rescheduled.
    NodeDown {
        /// Node id.
        id: String,
    },
    /// The node is ready again.
    NodeUp {
        /// Node id.
        id: String,
    },
    /// Create a service.
    CreateService(ServiceDef),
    /// Change a replicated service's replica count.
    ScaleService {
        /// Service name.
        name: String,
        /// New count.
        replicas: u64,
    },
    /// Remove a service and its tasks.
    RemoveService {
        /// Service name.
        name: String,
    },
    /// Fail running tasks of a service (they are restarted elsewhere or in
    /// place, as the scheduler decides).
    FailTasks {
        /// Service name.
        service: String,
        /// How many tasks.
        count: usize,
        /// Only tasks on this node.
        #[serde(default)]
        node: Option<String>,
    },
    /// Advance the virtual clock.
    Advance {
        /// Seconds.
        seconds: f64,
    },
}

/// A workload line that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("workload line {line}: {message}")]
pub struct WorkloadError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a workload (JSON lines).
pub fn parse_workload(text: &str) -> Result<Vec<Event>, WorkloadError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let e: Event = serde_json::from_str(l).map_err(|e| WorkloadError {
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }

    #[test]
    fn lines_parse_and_errors_name_the_line() {
        let w = parse_workload(
            "# a comment\n{\"op\":\"add_node\",\"id\":\"n1\",\"cpus\":2,\"memory\":\"1GiB\",\"generic\":{\"gpu\":[\"a\",\"b\"],\"ssd\":2}}\n\n{\"op\":\"advance\",\"seconds\":1.5}\n",
        )
        .unwrap();
        assert_eq!(w.len(), 2);
        let Event::AddNode(n) = &w[0] else {
            panic!("not a node: {:?}", w[0]);
        };
        assert_eq!(n.memory, Bytes(1 << 30));
        assert_eq!(
            n.generic["gpu"],
            GenericOffer::Named(vec!["a".into(), "b".into()])
        );
        let err = parse_workload("{\"op\":\"add_node\"}\n{\"op\":\"bogus\"}").unwrap_err();
        assert_eq!(err.line, 1);
    }
}
