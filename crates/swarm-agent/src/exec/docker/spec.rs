//! A task's container as the engine's create request: a pure mapping
//! from the task spec, checked before anything is created.

use bollard::models::{ContainerCreateBody, HostConfig, Mount};
use swarm_api::v1::{ContainerSpec, Task};

use super::{health, labels};
use crate::exec::{ExecError, parse_signal};

/// The container's name: `<service name>.<slot>.<task id>`, with the node
/// id for a global service's task (slot 0), `task.<task id>` for a task
/// without a service name. Characters the engine refuses in names become
/// `-`.
pub fn container_name(task: &Task) -> String {
    let service = task
        .service_annotations
        .as_ref()
        .map(|a| a.name.as_str())
        .filter(|n| !n.is_empty());
    let name = match service {
        None => format!("task.{}", task.id),
        Some(s) if task.slot > 0 => format!("{s}.{}.{}", task.slot, task.id),
        Some(s) if !task.node_id.is_empty() => format!("{s}.{}.{}", task.node_id, task.id),
        Some(s) => format!("{s}.{}", task.id),
    };
    name.chars()
        .enumerate()
        .map(|(i, c)| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => c,
            '_' | '.' | '-' if i > 0 => c,
            _ => '-',
        })
        .collect()
}

/// What the controller adds to the spec: where the container runs and
/// what the agent mounts into it.
#[derive(Debug, Clone)]
pub(super) struct Extras {
    /// The engine's network mode.
    pub(super) network_mode: String,
    /// Secret and config file mounts.
    pub(super) file_mounts: Vec<Mount>,
}

/// Checks what the spec asks for without building anything.
pub(super) fn validate(spec: &ContainerSpec) -> Result<(), ExecError> {
    if spec.image.trim().is_empty() {
        return Err(ExecError::InvalidSpec(
            "the docker executor needs an image".into(),
        ));
    }
    crate::exec::checks::env(spec)?;
    crate::exec::checks::container_dir(spec)?;
    parse_signal(&spec.stop_signal)?;
    health::to_engine(spec.healthcheck.as_ref())?;
    super::mounts::spec_mounts(spec)?;
    Ok(())
}

/// The engine's create request for `task`.
pub(super) fn create_body(
    task: &Task,
    spec: &ContainerSpec,
    extras: Extras,
) -> Result<ContainerCreateBody, ExecError> {
    validate(spec)?;
    let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let some_str = |s: &String| (!s.is_empty()).then(|| s.clone());
    let limits = task
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let mut mounts = super::mounts::spec_mounts(spec)?;
    mounts.extend(extras.file_mounts);
    let stop_timeout = spec
        .stop_grace_period
        .as_ref()
        .and_then(|d| d.to_std().ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    let host_config = HostConfig {
        network_mode: Some(extras.network_mode.clone()),
        nano_cpus: limits.map(|l| l.nano_cpus).filter(|n| *n > 0),
        memory: limits.map(|l| l.memory_bytes).filter(|m| *m > 0),
        mounts: (!mounts.is_empty()).then_some(mounts),
        group_add: some_vec(&spec.groups),
        cap_add: some_vec(&spec.capability_add),
        cap_drop: some_vec(&spec.capability_drop),
        readonly_rootfs: spec.read_only.then_some(true),
        init: spec.init.then_some(true),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: some_vec(&spec.command),
        cmd: some_vec(&spec.args),
        env: some_vec(&spec.env),
        working_dir: some_str(&spec.dir),
        user: some_str(&spec.user),
        // In another container's namespaces the hostname is that
        // container's (the engine refuses one here).
        hostname: some_str(&spec.hostname)
            .filter(|_| !extras.network_mode.starts_with("container:")),
        tty: spec.tty.then_some(true),
        labels: Some(labels::for_task(task, &container_name(task))),
        stop_signal: Some(parse_signal(&spec.stop_signal)?.as_str().to_string()),
        stop_timeout,
        healthcheck: health::to_engine(spec.healthcheck.as_ref())?,
        host_config: Some(host_config),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use swarm_api::v1::{Annotations, ResourceRequirements, Resources, TaskSpec};

    use super::*;

    fn task(spec: ContainerSpec) -> Task {
        Task {
            id: "t1".into(),
            service_id: "svc1".into(),
            slot: 2,
            node_id: "n1".into(),
            service_annotations: Some(Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            spec: Some(TaskSpec {
                container: Some(spec),
                resources: Some(ResourceRequirements {
                    limits: Some(Resources {
                        nano_cpus: 500_000_000,
                        memory_bytes: 64 << 20,
                        generic: Vec::new(),
                    }),
                    reservations: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn extras() -> Extras {
        Extras {
            network_mode: "bridge".into(),
            file_mounts: Vec::new(),
        }
    }

    #[test]
    fn names_follow_the_swarm_convention() {
        let mut t = task(ContainerSpec::default());
        assert_eq!(container_name(&t), "web.2.t1");
        t.slot = 0;
        assert_eq!(container_name(&t), "web.n1.t1", "global service");
        t.service_annotations = None;
        assert_eq!(container_name(&t), "task.t1");
        t.service_annotations = Some(Annotations {
            name: "_odd name/x".into(),
            ..Default::default()
        });
        t.slot = 1;
        assert_eq!(container_name(&t), "-odd-name-x.1.t1");
    }

    #[test]
    fn the_spec_maps_onto_the_create_request() {
        let spec = ContainerSpec {
            image: "swarm-test/busybox".into(),
            command: vec!["/bin/sh".into(), "-c".into()],
            args: vec!["echo hi".into()],
            env: vec!["A=1".into()],
            dir: "/tmp".into(),
            user: "65534".into(),
            hostname: "box".into(),
            stop_signal: "usr1".into(),
            stop_grace_period: Some(swarm_api::v1::Duration::from_secs(7)),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        let t = task(spec.clone());
        let body = create_body(&t, &spec, extras()).unwrap();
        assert_eq!(body.image.as_deref(), Some("swarm-test/busybox"));
        assert_eq!(body.entrypoint, Some(spec.command.clone()));
        assert_eq!(body.cmd, Some(spec.args.clone()));
        assert_eq!(body.env, Some(spec.env.clone()));
        assert_eq!(body.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(body.user.as_deref(), Some("65534"));
        assert_eq!(body.hostname.as_deref(), Some("box"));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGUSR1"));
        assert_eq!(body.stop_timeout, Some(7));
        assert_eq!(body.healthcheck, None);
        let labels = body.labels.unwrap();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(labels.get(labels::TASK_ID).map(String::as_str), Some("t1"));
        assert_eq!(
            labels.get(labels::TASK_NAME).map(String::as_str),
            Some("web.2.t1")
        );
        assert_eq!(labels.get(labels::SLOT).map(String::as_str), Some("2"));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.mounts, None);
        assert_eq!((host.readonly_rootfs, host.init), (None, None));
    }

    #[test]
    fn in_a_sandbox_the_hostname_is_the_sandboxs() {
        let spec = ContainerSpec {
            image: "img".into(),
            hostname: "box".into(),
            ..Default::default()
        };
        let extras = Extras {
            network_mode: "container:abc".into(),
            file_mounts: Vec::new(),
        };
        let body = create_body(&task(spec.clone()), &spec, extras).unwrap();
        assert_eq!(body.hostname, None, "the engine refuses one here");
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("container:abc")
        );
    }

    #[test]
    fn without_a_command_the_image_entrypoint_stays() {
        let spec = ContainerSpec {
            image: "img".into(),
            args: vec!["serve".into()],
            ..Default::default()
        };
        let body = create_body(&task(spec.clone()), &spec, extras()).unwrap();
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.cmd, Some(vec!["serve".to_string()]));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGTERM"));
    }

    #[test]
    fn bad_specs_are_refused() {
        let base = ContainerSpec {
            image: "img".into(),
            ..Default::default()
        };
        let cases = [
            ContainerSpec {
                image: String::new(),
                ..base.clone()
            },
            ContainerSpec {
                env: vec!["NOEQUALS".into()],
                ..base.clone()
            },
            ContainerSpec {
                dir: "relative".into(),
                ..base.clone()
            },
            ContainerSpec {
                stop_signal: "SIGNOPE".into(),
                ..base.clone()
            },
        ];
        for spec in cases {
            assert!(
                matches!(validate(&spec), Err(ExecError::InvalidSpec(_))),
                "{spec:?}"
            );
        }
        assert!(validate(&base).is_ok());
    }
}
