//! The flags of `service create` and `service update`, and how they become
//! (or change) a [`ServiceSpec`].

use clap::Args;
use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::{
    Annotations, ContainerSpec, EndpointSpec, FailureAction, NetworkAttachmentConfig, Placement,
    PlacementPreference, ResolutionMode, ResourceRequirements, Resources, RestartCondition,
    RestartPolicy, ServiceSpec, SpreadOver, TaskSpec, UpdateConfig, UpdateOrder,
    placement_preference,
};

use super::flags::{self, FlagError};

/// Flags shared by `create` and `update`: each one given changes the spec,
/// each one left out keeps what is there (or the default, on create).
#[derive(Debug, Clone, Default, Args)]
pub struct CommonOptions {
    /// Tasks updated at once (0 = all at once).
    #[arg(long)]
    pub update_parallelism: Option<u64>,
    /// Delay between update batches, e.g. 10s.
    #[arg(long)]
    pub update_delay: Option<String>,
    /// Action on update failure: pause, continue or rollback.
    #[arg(long)]
    pub update_failure_action: Option<String>,
    /// How long each updated task is watched for failure, e.g. 5s.
    #[arg(long)]
    pub update_monitor: Option<String>,
    /// Fraction of updated tasks that may fail (0..=1).
    #[arg(long)]
    pub update_max_failure_ratio: Option<f32>,
    /// Update order: stop-first or start-first.
    #[arg(long)]
    pub update_order: Option<String>,
    /// Tasks rolled back at once (0 = all at once).
    #[arg(long)]
    pub rollback_parallelism: Option<u64>,
    /// Delay between rollback batches.
    #[arg(long)]
    pub rollback_delay: Option<String>,
    /// Action on rollback failure: pause or continue.
    #[arg(long)]
    pub rollback_failure_action: Option<String>,
    /// How long each rolled-back task is watched for failure.
    #[arg(long)]
    pub rollback_monitor: Option<String>,
    /// Rollback order: stop-first or start-first.
    #[arg(long)]
    pub rollback_order: Option<String>,
    /// Restart when: none, on-failure or any.
    #[arg(long)]
    pub restart_condition: Option<String>,
    /// Delay between restarts, e.g. 5s.
    #[arg(long)]
    pub restart_delay: Option<String>,
    /// Maximum restarts within the window (0 = unlimited).
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    /// Window over which restarts are counted, e.g. 1m.
    #[arg(long)]
    pub restart_window: Option<String>,
    /// CPU limit, e.g. 0.5.
    #[arg(long)]
    pub limit_cpu: Option<String>,
    /// Memory limit, e.g. 512M.
    #[arg(long)]
    pub limit_memory: Option<String>,
    /// CPU reserved for placement.
    #[arg(long)]
    pub reserve_cpu: Option<String>,
    /// Memory reserved for placement.
    #[arg(long)]
    pub reserve_memory: Option<String>,
    /// At most this many tasks per node (0 = unlimited).
    #[arg(long)]
    pub replicas_max_per_node: Option<u64>,
    /// Endpoint mode: vip or dnsrr.
    #[arg(long)]
    pub endpoint_mode: Option<String>,
    /// Working directory inside the task.
    #[arg(long, short = 'w')]
    pub workdir: Option<String>,
    /// User (name, uid or uid:gid).
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Hostname inside the task.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Signal that stops the task, e.g. SIGTERM.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Time between the stop signal and a kill, e.g. 10s.
    #[arg(long)]
    pub stop_grace_period: Option<String>,
}

/// `service create` flags.
#[derive(Debug, Clone, Args)]
pub struct CreateOptions {
    /// Service name.
    #[arg(long)]
    pub name: String,
    /// replicated, global, replicated-job or global-job.
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Number of tasks (completions, for replicated-job).
    #[arg(long)]
    pub replicas: Option<u64>,
    /// Tasks of a replicated job run at once.
    #[arg(long)]
    pub max_concurrent: Option<u64>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// Service label KEY=VALUE (repeatable).
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// Container label KEY=VALUE (repeatable).
    #[arg(long = "container-label")]
    pub container_labels: Vec<String>,
    /// Placement constraint, e.g. node.labels.zone==a (repeatable).
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
    /// Placement preference, e.g. spread=node.labels.zone (repeatable).
    #[arg(long = "placement-pref")]
    pub placement_prefs: Vec<String>,
    /// Published port PUBLISHED:TARGET[/PROTO] or long form (repeatable).
    #[arg(long = "publish", short = 'p')]
    pub publish: Vec<String>,
    /// Network to attach to, by name or id (repeatable).
    #[arg(long = "network")]
    pub networks: Vec<String>,
    /// Secret to expose: NAME or source=NAME,target=FILE (repeatable).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Config to expose: NAME or source=NAME,target=PATH (repeatable).
    #[arg(long = "config")]
    pub configs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Run an init process as PID 1.
    #[arg(long)]
    pub init: bool,
    /// Settings shared with `update`.
    #[command(flatten)]
    pub common: CommonOptions,
    /// Image (unused by the process executor, but shown).
    pub image: String,
    /// Command and arguments to run.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `service update` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct UpdateOptions {
    /// New image.
    #[arg(long)]
    pub image: Option<String>,
    /// New command and arguments, whitespace-separated.
    #[arg(long)]
    pub args: Option<String>,
    /// New number of tasks (replicated modes).
    #[arg(long)]
    pub replicas: Option<u64>,
    /// Add or change an environment variable KEY=VALUE.
    #[arg(long)]
    pub env_add: Vec<String>,
    /// Remove an environment variable by KEY.
    #[arg(long)]
    pub env_rm: Vec<String>,
    /// Add or change a service label.
    #[arg(long)]
    pub label_add: Vec<String>,
    /// Remove a service label by key.
    #[arg(long)]
    pub label_rm: Vec<String>,
    /// Add a placement constraint.
    #[arg(long)]
    pub constraint_add: Vec<String>,
    /// Remove a placement constraint (exact text).
    #[arg(long)]
    pub constraint_rm: Vec<String>,
    /// Add a published port.
    #[arg(long)]
    pub publish_add: Vec<String>,
    /// Remove a published port by its target port.
    #[arg(long)]
    pub publish_rm: Vec<u32>,
    /// Attach to a network.
    #[arg(long)]
    pub network_add: Vec<String>,
    /// Detach from a network (name or id as given).
    #[arg(long)]
    pub network_rm: Vec<String>,
    /// Expose a secret.
    #[arg(long)]
    pub secret_add: Vec<String>,
    /// Stop exposing a secret, by name.
    #[arg(long)]
    pub secret_rm: Vec<String>,
    /// Roll out again even without a spec change.
    #[arg(long)]
    pub force: bool,
    /// Settings shared with `create`.
    #[command(flatten)]
    pub common: CommonOptions,
}

fn container(spec: &mut ServiceSpec) -> &mut ContainerSpec {
    spec.task
        .get_or_insert_with(Default::default)
        .container
        .get_or_insert_with(Default::default)
}

fn placement(spec: &mut ServiceSpec) -> &mut Placement {
    spec.task
        .get_or_insert_with(Default::default)
        .placement
        .get_or_insert_with(Default::default)
}

fn endpoint(spec: &mut ServiceSpec) -> &mut EndpointSpec {
    spec.endpoint.get_or_insert_with(Default::default)
}

fn preference(s: &str) -> Result<PlacementPreference, FlagError> {
    match s.split_once('=') {
        Some(("spread", d)) if !d.is_empty() => Ok(PlacementPreference {
            preference: Some(placement_preference::Preference::Spread(SpreadOver {
                spread_descriptor: d.to_string(),
            })),
        }),
        _ => Err(FlagError {
            flag: "--placement-pref",
            given: s.to_string(),
            reason: "expected spread=<label descriptor>".into(),
        }),
    }
}

/// The spec `service create` sends.
pub fn create_spec(o: &CreateOptions) -> Result<ServiceSpec, FlagError> {
    let mode = flags::mode(&o.mode, o.replicas, o.max_concurrent)?;
    let mut spec = ServiceSpec {
        annotations: Some(Annotations {
            name: o.name.clone(),
            labels: flags::labels("--label", &o.labels)?,
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: o.image.clone(),
                command: o.command.clone(),
                env: o.env.clone(),
                labels: flags::labels("--container-label", &o.container_labels)?,
                read_only: o.read_only,
                init: o.init,
                ..Default::default()
            }),
            networks: o
                .networks
                .iter()
                .map(|n| NetworkAttachmentConfig {
                    target: n.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        mode: Some(mode),
        ..Default::default()
    };
    if !o.constraints.is_empty() || !o.placement_prefs.is_empty() {
        let p = placement(&mut spec);
        p.constraints.clone_from(&o.constraints);
        p.preferences = o
            .placement_prefs
            .iter()
            .map(|s| preference(s))
            .collect::<Result<_, _>>()?;
    }
    if !o.publish.is_empty() {
        endpoint(&mut spec).ports = o
            .publish
            .iter()
            .map(|s| flags::publish(s))
            .collect::<Result<_, _>>()?;
    }
    let c = container(&mut spec);
    c.secrets = o
        .secrets
        .iter()
        .map(|s| flags::secret(s))
        .collect::<Result<_, _>>()?;
    c.configs = o
        .configs
        .iter()
        .map(|s| flags::config(s))
        .collect::<Result<_, _>>()?;
    apply_common(&o.common, &mut spec)?;
    Ok(spec)
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Applies `service update` flags to the current spec.
pub fn apply_update(o: &UpdateOptions, spec: &mut ServiceSpec) -> Result<(), FlagError> {
    if let Some(image) = &o.image {
        container(spec).image.clone_from(image);
    }
    if let Some(args) = &o.args {
        container(spec).command = args.split_whitespace().map(str::to_string).collect();
    }
    if let Some(n) = o.replicas {
        match spec.mode.as_mut() {
            Some(Mode::Replicated(r)) => r.replicas = n,
            Some(Mode::ReplicatedJob(j)) => j.total_completions = n,
            _ => {
                return Err(FlagError {
                    flag: "--replicas",
                    given: n.to_string(),
                    reason: "the service is not in a replicated mode".into(),
                });
            }
        }
    }
    let c = container(spec);
    c.env.retain(|e| {
        !o.env_rm.iter().any(|k| k == env_key(e))
            && !o.env_add.iter().any(|a| env_key(a) == env_key(e))
    });
    c.env.extend(o.env_add.iter().cloned());
    c.secrets.retain(|s| !o.secret_rm.contains(&s.secret_name));
    for s in &o.secret_add {
        c.secrets.push(flags::secret(s)?);
    }
    let labels = &mut spec.annotations.get_or_insert_with(Default::default).labels;
    for k in &o.label_rm {
        labels.remove(k);
    }
    labels.extend(flags::labels("--label-add", &o.label_add)?);
    if !o.constraint_add.is_empty() || !o.constraint_rm.is_empty() {
        let p = placement(spec);
        p.constraints.retain(|c| !o.constraint_rm.contains(c));
        p.constraints.extend(o.constraint_add.iter().cloned());
    }
    if !o.publish_add.is_empty() || !o.publish_rm.is_empty() {
        let e = endpoint(spec);
        e.ports.retain(|p| !o.publish_rm.contains(&p.target_port));
        for s in &o.publish_add {
            let new = flags::publish(s)?;
            e.ports.retain(|p| p.target_port != new.target_port);
            e.ports.push(new);
        }
    }
    let task = spec.task.get_or_insert_with(Default::default);
    task.networks.retain(|n| !o.network_rm.contains(&n.target));
    for n in &o.network_add {
        task.networks.push(NetworkAttachmentConfig {
            target: n.clone(),
            ..Default::default()
        });
    }
    if o.force {
        task.force_update += 1;
    }
    apply_common(&o.common, spec)
}

/// The update (or rollback) flags of one kind, as given.
struct UpdateFlags<'a> {
    prefix: &'static str,
    parallelism: Option<u64>,
    delay: Option<&'a String>,
    failure_action: Option<&'a String>,
    monitor: Option<&'a String>,
    max_failure_ratio: Option<f32>,
    order: Option<&'a String>,
}

fn update_config(f: &UpdateFlags<'_>, target: &mut Option<UpdateConfig>) -> Result<(), FlagError> {
    let any = f.parallelism.is_some()
        || f.delay.is_some()
        || f.failure_action.is_some()
        || f.monitor.is_some()
        || f.max_failure_ratio.is_some()
        || f.order.is_some();
    if !any {
        return Ok(());
    }
    let prefix = f.prefix;
    let u = target.get_or_insert_with(|| UpdateConfig {
        parallelism: 1,
        ..Default::default()
    });
    if let Some(p) = f.parallelism {
        u.parallelism = p;
    }
    if let Some(d) = f.delay {
        u.delay = Some(flags::duration(prefix, d)?.into());
    }
    if let Some(a) = f.failure_action {
        u.set_failure_action(flags::enum_value::<FailureAction>(prefix, a)?);
    }
    if let Some(m) = f.monitor {
        u.monitor = Some(flags::duration(prefix, m)?.into());
    }
    if let Some(r) = f.max_failure_ratio {
        u.max_failure_ratio = r;
    }
    if let Some(o) = f.order {
        u.set_order(flags::enum_value::<UpdateOrder>(prefix, o)?);
    }
    Ok(())
}

/// Applies the flags shared by create and update.
pub fn apply_common(o: &CommonOptions, spec: &mut ServiceSpec) -> Result<(), FlagError> {
    update_config(
        &UpdateFlags {
            prefix: "--update-*",
            parallelism: o.update_parallelism,
            delay: o.update_delay.as_ref(),
            failure_action: o.update_failure_action.as_ref(),
            monitor: o.update_monitor.as_ref(),
            max_failure_ratio: o.update_max_failure_ratio,
            order: o.update_order.as_ref(),
        },
        &mut spec.update,
    )?;
    update_config(
        &UpdateFlags {
            prefix: "--rollback-*",
            parallelism: o.rollback_parallelism,
            delay: o.rollback_delay.as_ref(),
            failure_action: o.rollback_failure_action.as_ref(),
            monitor: o.rollback_monitor.as_ref(),
            max_failure_ratio: None,
            order: o.rollback_order.as_ref(),
        },
        &mut spec.rollback,
    )?;
    let task = spec.task.get_or_insert_with(Default::default);
    if o.restart_condition.is_some()
        || o.restart_delay.is_some()
        || o.restart_max_attempts.is_some()
        || o.restart_window.is_some()
    {
        let r = task.restart.get_or_insert_with(|| RestartPolicy {
            condition: RestartCondition::Any.into(),
            delay: Some(swarm_api::defaults::RESTART_DELAY.into()),
            ..Default::default()
        });
        if let Some(c) = &o.restart_condition {
            r.set_condition(flags::enum_value("--restart-condition", c)?);
        }
        if let Some(d) = &o.restart_delay {
            r.delay = Some(flags::duration("--restart-delay", d)?.into());
        }
        if let Some(n) = o.restart_max_attempts {
            r.max_attempts = n;
        }
        if let Some(w) = &o.restart_window {
            r.window = Some(flags::duration("--restart-window", w)?.into());
        }
    }
    let resources = |cpu: &Option<String>, mem: &Option<String>, target: &mut Option<Resources>| {
        if cpu.is_none() && mem.is_none() {
            return Ok::<(), FlagError>(());
        }
        let r = target.get_or_insert_with(Default::default);
        if let Some(c) = cpu {
            r.nano_cpus = flags::nano_cpus("--limit-cpu/--reserve-cpu", c)?;
        }
        if let Some(m) = mem {
            r.memory_bytes = flags::memory_bytes("--limit-memory/--reserve-memory", m)?;
        }
        Ok(())
    };
    if o.limit_cpu.is_some()
        || o.limit_memory.is_some()
        || o.reserve_cpu.is_some()
        || o.reserve_memory.is_some()
    {
        let req = task
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        resources(&o.limit_cpu, &o.limit_memory, &mut req.limits)?;
        resources(&o.reserve_cpu, &o.reserve_memory, &mut req.reservations)?;
    }
    if let Some(n) = o.replicas_max_per_node {
        task.placement
            .get_or_insert_with(Default::default)
            .max_replicas = n;
    }
    let c = task.container.get_or_insert_with(Default::default);
    if let Some(w) = &o.workdir {
        c.dir.clone_from(w);
    }
    if let Some(u) = &o.user {
        c.user.clone_from(u);
    }
    if let Some(h) = &o.hostname {
        c.hostname.clone_from(h);
    }
    if let Some(s) = &o.stop_signal {
        c.stop_signal.clone_from(s);
    }
    if let Some(g) = &o.stop_grace_period {
        c.stop_grace_period = Some(flags::duration("--stop-grace-period", g)?.into());
    }
    if let Some(m) = &o.endpoint_mode {
        endpoint(spec).set_mode(flags::enum_value::<ResolutionMode>("--endpoint-mode", m)?);
    }
    Ok(())
}
