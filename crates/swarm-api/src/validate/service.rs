//! Service specs.

use std::collections::BTreeSet;

use super::{Result, fail, known, labels, non_negative, validate_name};
use crate::defaults::MAX_REPLICAS;
use crate::v1::service_spec::Mode;
use crate::v1::{
    ContainerSpec, EndpointSpec, FailureAction, FileTarget, HealthConfig, MountType, Placement,
    Protocol, PublishMode, ResolutionMode, ResourceRequirements, Resources, RestartCondition,
    RestartPolicy, ServiceSpec, TaskSpec, UpdateConfig, UpdateOrder, generic_resource,
};

/// Checks a service spec. Field paths start at `spec`.
pub fn validate_service_spec(spec: &ServiceSpec) -> Result {
    let Some(annotations) = &spec.annotations else {
        return fail("spec.annotations.name", "a name is required");
    };
    validate_name("spec.annotations.name", &annotations.name)?;
    labels("spec.annotations.labels", &annotations.labels)?;
    let Some(task) = &spec.task else {
        return fail("spec.task", "a task template is required");
    };
    validate_task_spec("spec.task", task)?;
    let is_job = match &spec.mode {
        None => {
            return fail(
                "spec.mode",
                "required: one of replicated, global, replicated_job, global_job",
            );
        }
        Some(Mode::Replicated(r)) => {
            bounded("spec.mode.replicated.replicas", r.replicas)?;
            false
        }
        Some(Mode::Global(_)) => false,
        Some(Mode::ReplicatedJob(j)) => {
            bounded("spec.mode.replicated_job.max_concurrent", j.max_concurrent)?;
            bounded(
                "spec.mode.replicated_job.total_completions",
                j.total_completions,
            )?;
            true
        }
        Some(Mode::GlobalJob(_)) => true,
    };
    if is_job && (spec.update.is_some() || spec.rollback.is_some()) {
        return fail(
            "spec.update",
            "jobs are not updated in place: remove update and rollback config",
        );
    }
    if let Some(u) = &spec.update {
        validate_update_config("spec.update", u)?;
    }
    if let Some(u) = &spec.rollback {
        validate_update_config("spec.rollback", u)?;
    }
    if let Some(e) = &spec.endpoint {
        validate_endpoint("spec.endpoint", e)?;
    }
    Ok(())
}

fn bounded(field: &str, n: u64) -> Result {
    if n > MAX_REPLICAS {
        return fail(
            field,
            format!("{n} is more than the maximum of {MAX_REPLICAS}"),
        );
    }
    Ok(())
}

fn validate_task_spec(field: &str, task: &TaskSpec) -> Result {
    let Some(container) = &task.container else {
        return fail(format!("{field}.container"), "a container spec is required");
    };
    validate_container(&format!("{field}.container"), container)?;
    if let Some(r) = &task.resources {
        validate_resource_requirements(&format!("{field}.resources"), r)?;
    }
    if let Some(r) = &task.restart {
        validate_restart(&format!("{field}.restart"), r)?;
    }
    if let Some(p) = &task.placement {
        validate_placement(&format!("{field}.placement"), p)?;
    }
    let mut targets = BTreeSet::new();
    for (i, n) in task.networks.iter().enumerate() {
        let f = format!("{field}.networks[{i}].target");
        if n.target.trim().is_empty() {
            return fail(f, "a network id or name is required");
        }
        if !targets.insert(n.target.to_ascii_lowercase()) {
            return fail(f, format!("network {:?} is attached twice", n.target));
        }
        for (j, alias) in n.aliases.iter().enumerate() {
            if alias.trim().is_empty() {
                return fail(
                    format!("{field}.networks[{i}].aliases[{j}]"),
                    "an alias must not be empty",
                );
            }
        }
    }
    if let Some(d) = &task.log_driver
        && d.name.trim().is_empty()
    {
        return fail(
            format!("{field}.log_driver.name"),
            "a log driver name is required",
        );
    }
    Ok(())
}

fn validate_container(field: &str, c: &ContainerSpec) -> Result {
    if c.image.trim().is_empty() && c.command.is_empty() {
        return fail(field, "an image or a command is required");
    }
    for (i, e) in c.env.iter().enumerate() {
        if e.is_empty() || e.starts_with('=') {
            return fail(
                format!("{field}.env[{i}]"),
                format!("{e:?} is not KEY=value"),
            );
        }
    }
    labels(&format!("{field}.labels"), &c.labels)?;
    let mut mount_targets = BTreeSet::new();
    for (i, m) in c.mounts.iter().enumerate() {
        let f = format!("{field}.mounts[{i}]");
        known::<MountType>(&format!("{f}.type"), m.r#type)?;
        if !m.target.starts_with('/') {
            return fail(
                format!("{f}.target"),
                format!("{:?} is not an absolute path", m.target),
            );
        }
        if !mount_targets.insert(m.target.as_str()) {
            return fail(
                format!("{f}.target"),
                format!("{:?} is mounted twice", m.target),
            );
        }
        match m.r#type() {
            MountType::Bind if !m.source.starts_with('/') => {
                return fail(
                    format!("{f}.source"),
                    "a bind mount needs an absolute host path",
                );
            }
            MountType::Volume if m.source.is_empty() => {
                return fail(format!("{f}.source"), "a volume mount needs a volume name");
            }
            MountType::Tmpfs if !m.source.is_empty() => {
                return fail(format!("{f}.source"), "a tmpfs mount takes no source");
            }
            _ => {}
        }
    }
    if !c.stop_signal.is_empty() && !is_signal(&c.stop_signal) {
        return fail(
            format!("{field}.stop_signal"),
            format!("{:?} is not a signal", c.stop_signal),
        );
    }
    non_negative(
        &format!("{field}.stop_grace_period"),
        c.stop_grace_period.as_ref(),
    )?;
    if let Some(h) = &c.healthcheck {
        validate_health(&format!("{field}.healthcheck"), h)?;
    }
    let mut files = BTreeSet::new();
    for (i, s) in c.secrets.iter().enumerate() {
        let f = format!("{field}.secrets[{i}]");
        if s.secret_id.is_empty() && s.secret_name.is_empty() {
            return fail(f, "a secret id or name is required");
        }
        file_target(&format!("{f}.file"), s.file.as_ref(), &mut files)?;
    }
    let mut config_files = BTreeSet::new();
    for (i, s) in c.configs.iter().enumerate() {
        let f = format!("{field}.configs[{i}]");
        if s.config_id.is_empty() && s.config_name.is_empty() {
            return fail(f, "a config id or name is required");
        }
        file_target(&format!("{f}.file"), s.file.as_ref(), &mut config_files)?;
    }
    Ok(())
}

fn file_target<'a>(
    field: &str,
    file: Option<&'a FileTarget>,
    seen: &mut BTreeSet<&'a str>,
) -> Result {
    let Some(file) = file else {
        return fail(field, "a file target is required");
    };
    if file.name.is_empty() {
        return fail(format!("{field}.name"), "a file name is required");
    }
    if file.name.split('/').any(|part| part == "..") {
        return fail(
            format!("{field}.name"),
            format!("{:?} must not contain '..'", file.name),
        );
    }
    if file.mode > 0o7777 {
        return fail(
            format!("{field}.mode"),
            format!("{:o} is not a file mode", file.mode),
        );
    }
    if !seen.insert(file.name.as_str()) {
        return fail(
            format!("{field}.name"),
            format!("{:?} is used twice", file.name),
        );
    }
    Ok(())
}

/// `SIGTERM`, `TERM`, `SIGRTMIN+3` or a number 1..=64.
fn is_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+' || b == b'-')
}

fn validate_health(field: &str, h: &HealthConfig) -> Result {
    if let Some(first) = h.test.first() {
        match first.as_str() {
            "NONE" => {}
            "CMD" | "CMD-SHELL" if h.test.len() > 1 => {}
            "CMD" | "CMD-SHELL" => {
                return fail(format!("{field}.test"), format!("{first} needs a command"));
            }
            other => {
                return fail(
                    format!("{field}.test[0]"),
                    format!("{other:?} must be NONE, CMD or CMD-SHELL"),
                );
            }
        }
    }
    for (name, d) in [
        ("interval", &h.interval),
        ("timeout", &h.timeout),
        ("start_period", &h.start_period),
    ] {
        non_negative(&format!("{field}.{name}"), d.as_ref())?;
    }
    for (name, d) in [("interval", &h.interval), ("timeout", &h.timeout)] {
        if let Some(d) = d
            && d.seconds == 0
            && d.nanos > 0
            && d.nanos < 1_000_000
        {
            return fail(
                format!("{field}.{name}"),
                "must be at least 1ms (or 0 for the default)",
            );
        }
    }
    if h.retries < 0 {
        return fail(
            format!("{field}.retries"),
            format!("must not be negative (got {})", h.retries),
        );
    }
    Ok(())
}

fn validate_resources(field: &str, r: &Resources) -> Result {
    if r.nano_cpus < 0 {
        return fail(
            format!("{field}.nano_cpus"),
            format!("must not be negative (got {})", r.nano_cpus),
        );
    }
    if r.memory_bytes < 0 {
        return fail(
            format!("{field}.memory_bytes"),
            format!("must not be negative (got {})", r.memory_bytes),
        );
    }
    for (i, g) in r.generic.iter().enumerate() {
        let f = format!("{field}.generic[{i}]");
        match &g.resource {
            None => return fail(f, "a named or discrete resource is required"),
            Some(generic_resource::Resource::Named(n))
                if n.kind.is_empty() || n.value.is_empty() =>
            {
                return fail(f, "a named resource needs a kind and a value");
            }
            Some(generic_resource::Resource::Discrete(d)) if d.kind.is_empty() => {
                return fail(f, "a discrete resource needs a kind");
            }
            Some(generic_resource::Resource::Discrete(d)) if d.value < 0 => {
                return fail(f, format!("must not be negative (got {})", d.value));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn validate_resource_requirements(field: &str, r: &ResourceRequirements) -> Result {
    if let Some(l) = &r.limits {
        validate_resources(&format!("{field}.limits"), l)?;
    }
    if let Some(res) = &r.reservations {
        validate_resources(&format!("{field}.reservations"), res)?;
    }
    if let (Some(l), Some(res)) = (&r.limits, &r.reservations) {
        if l.nano_cpus > 0 && res.nano_cpus > l.nano_cpus {
            return fail(
                format!("{field}.reservations.nano_cpus"),
                "must not exceed the limit",
            );
        }
        if l.memory_bytes > 0 && res.memory_bytes > l.memory_bytes {
            return fail(
                format!("{field}.reservations.memory_bytes"),
                "must not exceed the limit",
            );
        }
    }
    Ok(())
}

fn validate_restart(field: &str, r: &RestartPolicy) -> Result {
    known::<RestartCondition>(&format!("{field}.condition"), r.condition)?;
    non_negative(&format!("{field}.delay"), r.delay.as_ref())?;
    non_negative(&format!("{field}.window"), r.window.as_ref())
}

fn validate_placement(field: &str, p: &Placement) -> Result {
    for (i, c) in p.constraints.iter().enumerate() {
        if !c.contains("==") && !c.contains("!=") {
            return fail(
                format!("{field}.constraints[{i}]"),
                format!("{c:?} is not an expression of the form key==value or key!=value"),
            );
        }
    }
    for (i, pref) in p.preferences.iter().enumerate() {
        let f = format!("{field}.preferences[{i}]");
        match &pref.preference {
            None => return fail(f, "a preference (spread) is required"),
            Some(crate::v1::placement_preference::Preference::Spread(s)) => {
                let d = s.spread_descriptor.as_str();
                let ok = ["node.labels.", "engine.labels."].iter().any(|prefix| {
                    d.len() > prefix.len() && d.to_ascii_lowercase().starts_with(prefix)
                });
                if !ok {
                    return fail(
                        format!("{f}.spread.spread_descriptor"),
                        format!("{d:?} must be node.labels.<name> or engine.labels.<name>"),
                    );
                }
            }
        }
    }
    for (i, pl) in p.platforms.iter().enumerate() {
        if pl.os.is_empty() && pl.architecture.is_empty() {
            return fail(
                format!("{field}.platforms[{i}]"),
                "an os or an architecture is required",
            );
        }
    }
    Ok(())
}

fn validate_update_config(field: &str, u: &UpdateConfig) -> Result {
    known::<FailureAction>(&format!("{field}.failure_action"), u.failure_action)?;
    known::<UpdateOrder>(&format!("{field}.order"), u.order)?;
    non_negative(&format!("{field}.delay"), u.delay.as_ref())?;
    non_negative(&format!("{field}.monitor"), u.monitor.as_ref())?;
    if !(0.0..=1.0).contains(&u.max_failure_ratio) {
        return fail(
            format!("{field}.max_failure_ratio"),
            format!("{} is not between 0 and 1", u.max_failure_ratio),
        );
    }
    Ok(())
}

fn validate_endpoint(field: &str, e: &EndpointSpec) -> Result {
    known::<ResolutionMode>(&format!("{field}.mode"), e.mode)?;
    let mut published = BTreeSet::new();
    for (i, p) in e.ports.iter().enumerate() {
        let f = format!("{field}.ports[{i}]");
        known::<Protocol>(&format!("{f}.protocol"), p.protocol)?;
        known::<PublishMode>(&format!("{f}.publish_mode"), p.publish_mode)?;
        if !(1..=65535).contains(&p.target_port) {
            return fail(
                format!("{f}.target_port"),
                format!("{} is not a port (1-65535)", p.target_port),
            );
        }
        if p.published_port > 65535 {
            return fail(
                format!("{f}.published_port"),
                format!("{} is not a port (1-65535)", p.published_port),
            );
        }
        if p.published_port != 0 && !published.insert((p.published_port, p.protocol)) {
            return fail(
                format!("{f}.published_port"),
                format!(
                    "port {}/{} is published twice",
                    p.published_port,
                    p.protocol()
                ),
            );
        }
        if e.mode() == ResolutionMode::Dnsrr && p.publish_mode() == PublishMode::Ingress {
            return fail(
                f,
                "ports published through the ingress routing mesh need a VIP: \
                 use publish mode host with dnsrr, or resolution mode vip",
            );
        }
    }
    Ok(())
}
