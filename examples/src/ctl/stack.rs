//! From a compose file to the objects of a stack: pure planning, no I/O.
//!
//! A stack `NAME` is a set of services named `NAME_<service>` and networks
//! named `NAME_<network>` (overlay), all labelled
//! `com.docker.stack.namespace=NAME`. Services that list no network are put
//! on `NAME_default`, as docker does. Each service is reachable on its
//! networks under its short compose name too (an alias).

use std::collections::BTreeMap;

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::{
    Annotations, ContainerSpec, Driver, NetworkAttachmentConfig, NetworkSpec, PlacementPreference,
    ServiceSpec, SpreadOver, TaskSpec, placement_preference,
};

use super::compose::{ComposeFile, ComposePort, ComposeService, ComposeUpdateConfig, Scalar};
use super::flags::{self, FlagError};
use super::service_opts::{CommonOptions, apply_common};

/// The label that ties objects to their stack.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// Why a compose file cannot be turned into a stack.
#[derive(Debug, thiserror::Error)]
#[error("service {service:?}: {source}")]
pub struct StackError {
    /// The compose service.
    pub service: String,
    /// What is wrong with it.
    #[source]
    pub source: FlagError,
}

/// What a stack consists of.
#[derive(Debug, Clone, PartialEq)]
pub struct StackPlan {
    /// Networks the stack owns (to create if missing).
    pub networks: Vec<NetworkSpec>,
    /// Networks that must exist already (`external: true`).
    pub external_networks: Vec<String>,
    /// Services, in name order.
    pub services: Vec<ServiceSpec>,
}

/// `NAME_item`.
pub fn scoped(stack: &str, item: &str) -> String {
    format!("{stack}_{item}")
}

fn stack_labels(stack: &str, extra: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = extra;
    labels.insert(NAMESPACE_LABEL.into(), stack.into());
    labels
}

/// Plans the stack `stack` from a parsed compose file.
pub fn plan(stack: &str, file: &ComposeFile) -> Result<StackPlan, StackError> {
    let mut networks = Vec::new();
    let mut external_networks = Vec::new();
    // Compose network name -> the name the cluster knows it by.
    let mut real_name = BTreeMap::new();
    for (name, n) in &file.networks {
        let n = n.clone().unwrap_or_default();
        if n.external {
            external_networks.push(name.clone());
            real_name.insert(name.clone(), name.clone());
            continue;
        }
        real_name.insert(name.clone(), scoped(stack, name));
        networks.push(NetworkSpec {
            annotations: Some(Annotations {
                name: scoped(stack, name),
                labels: stack_labels(stack, n.labels.map(|l| l.map()).unwrap_or_default()),
            }),
            driver_config: Some(Driver {
                name: "overlay".into(),
                options: n.driver_opts.clone(),
            }),
            internal: n.internal,
            attachable: n.attachable,
            ..Default::default()
        });
    }
    let needs_default = file
        .services
        .values()
        .any(|s| s.networks.is_none() && !s.uses_host_network());
    if needs_default && !real_name.contains_key("default") {
        real_name.insert("default".into(), scoped(stack, "default"));
        networks.push(NetworkSpec {
            annotations: Some(Annotations {
                name: scoped(stack, "default"),
                labels: stack_labels(stack, BTreeMap::new()),
            }),
            driver_config: Some(Driver {
                name: "overlay".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let services = file
        .services
        .iter()
        .map(|(name, s)| {
            service_spec(stack, name, s, &real_name).map_err(|source| StackError {
                service: name.clone(),
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(StackPlan {
        networks,
        external_networks,
        services,
    })
}

fn port(p: &ComposePort) -> Result<swarm_api::v1::PortConfig, FlagError> {
    match p {
        ComposePort::Short(s) => flags::publish(&s.text()),
        ComposePort::Long(l) => {
            let mut text = format!("target={}", l.target);
            if let Some(p) = l.published {
                text.push_str(&format!(",published={p}"));
            }
            if let Some(p) = &l.protocol {
                text.push_str(&format!(",protocol={p}"));
            }
            if let Some(m) = &l.mode {
                text.push_str(&format!(",mode={m}"));
            }
            flags::publish(&text)
        }
    }
}

fn update_options(u: Option<&ComposeUpdateConfig>) -> ComposeUpdateConfig {
    u.cloned().unwrap_or_default()
}

fn service_spec(
    stack: &str,
    name: &str,
    s: &ComposeService,
    networks: &BTreeMap<String, String>,
) -> Result<ServiceSpec, FlagError> {
    if let Some(m) = &s.network_mode {
        let refuse = |reason: &str| FlagError {
            flag: "network_mode",
            given: m.clone(),
            reason: reason.to_string(),
        };
        if m != "host" {
            return Err(refuse("only `host` is supported"));
        }
        if s.networks.is_some() {
            return Err(refuse("a host-network service cannot also join networks"));
        }
    }
    let deploy = s.deploy.clone().unwrap_or_default();
    let mode = flags::mode(
        deploy.mode.as_deref().unwrap_or("replicated"),
        deploy.replicas,
        None,
    )?;
    let mut command = s.entrypoint.as_ref().map(|e| e.words()).unwrap_or_default();
    command.extend(s.command.as_ref().map(|c| c.words()).unwrap_or_default());
    let attachments = match &s.networks {
        Some(n) => n.entries(),
        None if s.uses_host_network() => Vec::new(),
        None => vec![("default".to_string(), Vec::new())],
    };
    let mut spec = ServiceSpec {
        annotations: Some(Annotations {
            name: scoped(stack, name),
            labels: stack_labels(stack, deploy.labels.map(|l| l.map()).unwrap_or_default()),
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: s.image.clone().unwrap_or_default(),
                command,
                env: s
                    .environment
                    .as_ref()
                    .map(|e| e.items())
                    .unwrap_or_default(),
                labels: stack_labels(
                    stack,
                    s.labels.as_ref().map(|l| l.map()).unwrap_or_default(),
                ),
                ..Default::default()
            }),
            networks: attachments
                .into_iter()
                .map(|(n, mut aliases)| {
                    aliases.insert(0, name.to_string());
                    NetworkAttachmentConfig {
                        target: networks.get(&n).cloned().unwrap_or(n),
                        aliases,
                        addresses: Vec::new(),
                    }
                })
                .collect(),
            ..Default::default()
        }),
        mode: Some(mode),
        ..Default::default()
    };
    if !s.ports.is_empty() {
        spec.endpoint.get_or_insert_with(Default::default).ports =
            s.ports.iter().map(port).collect::<Result<_, _>>()?;
    }
    if let Some(p) = &deploy.placement {
        let placement = spec
            .task
            .get_or_insert_with(Default::default)
            .placement
            .get_or_insert_with(Default::default);
        placement.constraints.clone_from(&p.constraints);
        placement.preferences = p
            .preferences
            .iter()
            .map(|x| PlacementPreference {
                preference: Some(placement_preference::Preference::Spread(SpreadOver {
                    spread_descriptor: x.spread.clone(),
                })),
            })
            .collect();
    }
    let resources = deploy.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let reservations = resources.reservations.unwrap_or_default();
    let update = update_options(deploy.update_config.as_ref());
    let rollback = update_options(deploy.rollback_config.as_ref());
    let restart = deploy.restart_policy.clone().unwrap_or_default();
    let is_job = matches!(spec.mode, Some(Mode::ReplicatedJob(_) | Mode::GlobalJob(_)));
    let text = |v: &Option<Scalar>| v.as_ref().map(Scalar::text);
    let common = CommonOptions {
        update_parallelism: update.parallelism,
        update_delay: update.delay,
        update_failure_action: update.failure_action,
        update_monitor: update.monitor,
        update_max_failure_ratio: update.max_failure_ratio,
        update_order: update.order,
        rollback_parallelism: rollback.parallelism,
        rollback_delay: rollback.delay,
        rollback_failure_action: rollback.failure_action,
        rollback_monitor: rollback.monitor,
        rollback_order: rollback.order,
        restart_condition: restart.condition,
        restart_delay: restart.delay,
        restart_max_attempts: restart.max_attempts,
        restart_window: restart.window,
        limit_cpu: text(&limits.cpus),
        limit_memory: text(&limits.memory),
        reserve_cpu: text(&reservations.cpus),
        reserve_memory: text(&reservations.memory),
        replicas_max_per_node: deploy
            .placement
            .as_ref()
            .and_then(|p| p.max_replicas_per_node),
        endpoint_mode: deploy.endpoint_mode.clone(),
        workdir: s.working_dir.clone(),
        user: s.user.clone(),
        hostname: s.hostname.clone(),
        stop_signal: s.stop_signal.clone(),
        stop_grace_period: s.stop_grace_period.clone(),
    };
    apply_common(&common, &mut spec)?;
    if is_job {
        // Jobs are not updated in place: the manager refuses update config.
        spec.update = None;
        spec.rollback = None;
    }
    Ok(spec)
}
