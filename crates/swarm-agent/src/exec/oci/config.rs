//! The parts of the OCI runtime specification (`config.json`, version
//! 1.0.2) this executor writes, as serde structs. Field names follow the
//! specification; absent optional fields are left out of the JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the runtime specification written.
pub const OCI_VERSION: &str = "1.0.2";

/// A bundle's `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// Specification version.
    pub oci_version: String,
    /// The container's process.
    pub process: Process,
    /// The root filesystem.
    pub root: Root,
    /// The container's host name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Mounts, in order.
    pub mounts: Vec<Mount>,
    /// Linux specifics.
    pub linux: Linux,
    /// Annotations (the task's labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The container's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// Allocate a terminal.
    #[serde(default)]
    pub terminal: bool,
    /// Who it runs as.
    pub user: User,
    /// Program and arguments.
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// Capability sets.
    pub capabilities: Capabilities,
    /// Resource limits of the process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    /// Set `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privileges: bool,
}

/// A user inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary group ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

/// The process's capability sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Bounding set.
    pub bounding: Vec<String>,
    /// Effective set.
    pub effective: Vec<String>,
    /// Permitted set.
    pub permitted: Vec<String>,
}

/// A POSIX resource limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// e.g. `RLIMIT_NOFILE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Hard limit.
    pub hard: u64,
    /// Soft limit.
    pub soft: u64,
}

/// The root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Path, relative to the bundle or absolute.
    pub path: String,
    /// Mounted read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// A mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Where inside the container.
    pub destination: String,
    /// Filesystem type (`bind` for bind mounts).
    #[serde(rename = "type")]
    pub kind: String,
    /// Source device, directory or file.
    pub source: String,
    /// Mount options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// Linux specifics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// Namespaces the container gets (or joins, with a path).
    pub namespaces: Vec<Namespace>,
    /// The cgroup path (relative to each hierarchy's root).
    pub cgroups_path: String,
    /// cgroup limits.
    pub resources: LinuxResources,
    /// Paths hidden from the container.
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    pub readonly_paths: Vec<String>,
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// `pid`, `network`, `ipc`, `uts`, `mount`.
    #[serde(rename = "type")]
    pub kind: String,
    /// An existing namespace to join instead of a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// cgroup limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxResources {
    /// Device access rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRule>,
    /// Memory limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// CPU limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Process-count limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Pids>,
}

/// A device cgroup rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// Allow or deny.
    pub allow: bool,
    /// `rwm` subset.
    pub access: String,
}

/// Memory limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Bytes.
    pub limit: i64,
}

/// CPU bandwidth limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// Microseconds of CPU time per period.
    pub quota: i64,
    /// Period in microseconds.
    pub period: u64,
}

/// Process-count limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pids {
    /// Most processes at once.
    pub limit: i64,
}
