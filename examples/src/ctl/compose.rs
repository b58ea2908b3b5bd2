//! The Compose v3 subset `stack deploy` understands, parsed with
//! serde-saphyr.
//!
//! Supported: top-level `version`, `services`, `networks`; per service
//! `image`, `command`, `entrypoint`, `environment` (list or map),
//! `labels`, `working_dir`, `user`, `hostname`, `ports` (short and long
//! syntax), `networks` (list or map with aliases), `deploy` (`mode`,
//! `replicas`, `labels`, `endpoint_mode`, `placement` with
//! `constraints`/`preferences`/`max_replicas_per_node`, `resources`,
//! `update_config`, `rollback_config`, `restart_policy`), `stop_signal`,
//! `stop_grace_period`. Any other key is an error that names it, so a
//! file never silently means less than it says.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A compose file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// Not YAML, or not the expected shape (the message has the location).
    #[error("invalid compose file: {0}")]
    Parse(String),
    /// Well-formed but not usable.
    #[error("invalid compose file: {0}")]
    Invalid(String),
}

/// A compose file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    /// File format version (informative).
    #[serde(default)]
    pub version: Option<String>,
    /// Services by name.
    #[serde(default)]
    pub services: BTreeMap<String, ComposeService>,
    /// Networks by name (a null value means defaults).
    #[serde(default)]
    pub networks: BTreeMap<String, Option<ComposeNetwork>>,
}

/// A string or a list of strings (`command`, `entrypoint`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// Shell-like words in one string (split on whitespace).
    String(String),
    /// Exact words.
    List(Vec<String>),
}

impl StringOrList {
    /// The words.
    pub fn words(&self) -> Vec<String> {
        match self {
            StringOrList::String(s) => s.split_whitespace().map(str::to_string).collect(),
            StringOrList::List(l) => l.clone(),
        }
    }
}

/// A scalar written as a string, number or boolean.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// Text.
    String(String),
    /// An integer.
    Int(i64),
    /// A decimal.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as text.
    pub fn text(&self) -> String {
        match self {
            Scalar::String(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// `KEY=VALUE` items or a map (`environment`, `labels`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ListOrMap {
    /// `- KEY=VALUE` items.
    List(Vec<String>),
    /// `KEY: VALUE` entries (a null value means empty).
    Map(BTreeMap<String, Option<Scalar>>),
}

impl Default for ListOrMap {
    fn default() -> Self {
        ListOrMap::List(Vec::new())
    }
}

impl ListOrMap {
    /// As `KEY=VALUE` strings, in order (maps sorted by key).
    pub fn items(&self) -> Vec<String> {
        match self {
            ListOrMap::List(l) => l.clone(),
            ListOrMap::Map(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_ref().map(Scalar::text).unwrap_or_default()))
                .collect(),
        }
    }

    /// As a map (list items without `=` get an empty value).
    pub fn map(&self) -> BTreeMap<String, String> {
        self.items()
            .into_iter()
            .map(|i| match i.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (i, String::new()),
            })
            .collect()
    }
}

/// One service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeService {
    /// Image.
    #[serde(default)]
    pub image: Option<String>,
    /// Command (and arguments).
    #[serde(default)]
    pub command: Option<StringOrList>,
    /// Entrypoint: put before the command.
    #[serde(default)]
    pub entrypoint: Option<StringOrList>,
    /// Environment.
    #[serde(default)]
    pub environment: Option<ListOrMap>,
    /// Container labels.
    #[serde(default)]
    pub labels: Option<ListOrMap>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// Hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Stop signal.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Stop grace period, e.g. `10s`.
    #[serde(default)]
    pub stop_grace_period: Option<String>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<ComposePort>,
    /// Networks.
    #[serde(default)]
    pub networks: Option<ServiceNetworks>,
    /// `host`: the tasks use their node's network and join no overlay
    /// network (what process-executor nodes can run); no other mode is
    /// supported.
    #[serde(default)]
    pub network_mode: Option<String>,
    /// Swarm settings.
    #[serde(default)]
    pub deploy: Option<Deploy>,
}

impl ComposeService {
    /// True with `network_mode: host`.
    pub fn uses_host_network(&self) -> bool {
        self.network_mode.as_deref() == Some("host")
    }
}

/// A port: `"8080:80"`, `80`, or the long syntax.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ComposePort {
    /// Short syntax.
    Short(Scalar),
    /// Long syntax.
    Long(LongPort),
}

/// The long port syntax.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongPort {
    /// Port inside the task.
    pub target: u16,
    /// Published port.
    #[serde(default)]
    pub published: Option<u16>,
    /// `tcp` or `udp`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `ingress` or `host`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// A service's networks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ServiceNetworks {
    /// Names.
    List(Vec<String>),
    /// Names with settings.
    Map(BTreeMap<String, Option<ServiceNetwork>>),
}

impl ServiceNetworks {
    /// Network names with their aliases.
    pub fn entries(&self) -> Vec<(String, Vec<String>)> {
        match self {
            ServiceNetworks::List(l) => l.iter().map(|n| (n.clone(), Vec::new())).collect(),
            ServiceNetworks::Map(m) => m
                .iter()
                .map(|(n, s)| (n.clone(), s.clone().unwrap_or_default().aliases))
                .collect(),
        }
    }
}

/// Per-network settings of a service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    /// Extra DNS names.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// `deploy:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// `replicated` (default), `global`, `replicated-job`, `global-job`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Replicas.
    #[serde(default)]
    pub replicas: Option<u64>,
    /// Service labels.
    #[serde(default)]
    pub labels: Option<ListOrMap>,
    /// `vip` or `dnsrr`.
    #[serde(default)]
    pub endpoint_mode: Option<String>,
    /// Placement.
    #[serde(default)]
    pub placement: Option<ComposePlacement>,
    /// Resources.
    #[serde(default)]
    pub resources: Option<ComposeResources>,
    /// Rolling update settings.
    #[serde(default)]
    pub update_config: Option<ComposeUpdateConfig>,
    /// Rollback settings.
    #[serde(default)]
    pub rollback_config: Option<ComposeUpdateConfig>,
    /// Restart policy.
    #[serde(default)]
    pub restart_policy: Option<ComposeRestartPolicy>,
}

/// `deploy.placement`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposePlacement {
    /// Constraints.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Preferences: `- spread: node.labels.zone`.
    #[serde(default)]
    pub preferences: Vec<ComposePreference>,
    /// At most this many tasks per node.
    #[serde(default)]
    pub max_replicas_per_node: Option<u64>,
}

/// One placement preference.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposePreference {
    /// Label to spread over.
    pub spread: String,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeResources {
    /// Limits.
    #[serde(default)]
    pub limits: Option<ComposeResource>,
    /// Reservations.
    #[serde(default)]
    pub reservations: Option<ComposeResource>,
}

/// CPU and memory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeResource {
    /// CPUs, e.g. `'0.5'`.
    #[serde(default)]
    pub cpus: Option<Scalar>,
    /// Memory, e.g. `512M`.
    #[serde(default)]
    pub memory: Option<Scalar>,
}

/// `deploy.update_config` / `rollback_config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeUpdateConfig {
    /// Tasks at once.
    #[serde(default)]
    pub parallelism: Option<u64>,
    /// Delay between batches.
    #[serde(default)]
    pub delay: Option<String>,
    /// `pause`, `continue`, `rollback`.
    #[serde(default)]
    pub failure_action: Option<String>,
    /// Watch time per task.
    #[serde(default)]
    pub monitor: Option<String>,
    /// Tolerated failure ratio.
    #[serde(default)]
    pub max_failure_ratio: Option<f32>,
    /// `stop-first` or `start-first`.
    #[serde(default)]
    pub order: Option<String>,
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeRestartPolicy {
    /// `none`, `on-failure`, `any`.
    #[serde(default)]
    pub condition: Option<String>,
    /// Delay.
    #[serde(default)]
    pub delay: Option<String>,
    /// Attempts.
    #[serde(default)]
    pub max_attempts: Option<u64>,
    /// Window.
    #[serde(default)]
    pub window: Option<String>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeNetwork {
    /// Driver (only `overlay`).
    #[serde(default)]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    /// No outside traffic.
    #[serde(default)]
    pub internal: bool,
    /// Standalone containers may attach.
    #[serde(default)]
    pub attachable: bool,
    /// Labels.
    #[serde(default)]
    pub labels: Option<ListOrMap>,
    /// Exists already: use it by name, do not create it.
    #[serde(default)]
    pub external: bool,
}

/// Parses a compose file's text.
pub fn parse(text: &str) -> Result<ComposeFile, ComposeError> {
    let file: ComposeFile =
        serde_saphyr::from_str(text).map_err(|e| ComposeError::Parse(e.to_string()))?;
    if file.services.is_empty() {
        return Err(ComposeError::Invalid("no services defined".into()));
    }
    if let Some(v) = &file.version
        && !v.starts_with('3')
    {
        return Err(ComposeError::Invalid(format!(
            "version {v:?} is not supported: use a version 3 file"
        )));
    }
    for (name, s) in &file.services {
        if s.image.as_deref().unwrap_or("").is_empty() && s.command.is_none() {
            return Err(ComposeError::Invalid(format!(
                "service {name:?} needs an image or a command"
            )));
        }
        for n in s
            .networks
            .as_ref()
            .map(ServiceNetworks::entries)
            .unwrap_or_default()
        {
            if !file.networks.contains_key(&n.0) {
                return Err(ComposeError::Invalid(format!(
                    "service {name:?} refers to undefined network {:?}",
                    n.0
                )));
            }
        }
    }
    for (name, n) in &file.networks {
        if let Some(d) = n.as_ref().and_then(|n| n.driver.as_deref())
            && d != "overlay"
        {
            return Err(ComposeError::Invalid(format!(
                "network {name:?}: driver {d:?} is not supported (only overlay)"
            )));
        }
    }
    Ok(file)
}
