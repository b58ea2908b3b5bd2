//! The Docker executor against the local engine: the executor
//! conformance suite, then what is specific to containers (image, name,
//! labels and limits, secrets and configs, health checks, recovery after
//! an agent restart). Skips, saying so, when no engine answers on
//! /var/run/docker.sock.

#![cfg(feature = "docker")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;
mod docker_image;

use std::sync::Arc;
use std::time::Duration;

use swarm_agent::conformance::Suite;
use swarm_agent::exec::docker::DockerExecutor;
use swarm_agent::exec::docker::labels;
use swarm_agent::{Controller, Dependencies, ExecError, Executor, Recovered};
use swarm_api::v1::*;

use docker_image::IMAGE;

/// Task files of the suite; each case removes its own task, which the
/// suite checks.
fn root() -> std::path::PathBuf {
    std::env::temp_dir().join("swarm-agent-docker-conformance")
}

async fn suite() -> Option<Suite> {
    let root = root();
    let exec = docker_image::executor(&root).await?;
    let docker = exec.client().clone();
    Some(
        Suite::new(Arc::new(exec))
            .base_spec(ContainerSpec {
                image: IMAGE.into(),
                ..Default::default()
            })
            .leftovers(move |id| {
                root.join(id).exists() || docker_image::has_container(&docker, id)
            }),
    )
}

swarm_agent::executor_conformance!(optional suite().await);

/// An executor with its own task root, or `None` to skip.
async fn executor(dir: &common::Dir) -> Option<DockerExecutor> {
    docker_image::executor(&dir.0).await
}

fn task_with(spec: ContainerSpec) -> Task {
    Task {
        id: swarm_api::id::new_id(),
        spec: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: if spec.image.is_empty() {
                    IMAGE.into()
                } else {
                    spec.image.clone()
                },
                ..spec
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// The task's output once it printed `END` (after it exited 0).
async fn output(c: &dyn Controller) -> Vec<String> {
    let exit = tokio::time::timeout(common::WAIT, c.wait())
        .await
        .expect("the task ends")
        .unwrap();
    assert!(exit.success(), "exit {exit:?}: {:?}", c.logs());
    common::eventually("output", || async {
        let lines: Vec<String> = c.logs().into_iter().map(|l| l.line).collect();
        lines.iter().any(|l| l == "END").then_some(lines)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_the_engine() {
    let dir = common::Dir::new("docker-describe");
    let Some(exec) = executor(&dir).await else {
        return;
    };
    assert_eq!(exec.name(), "docker");
    let d = exec.describe().await.unwrap();
    assert_eq!(d.executor, "docker");
    let r = d.resources.unwrap();
    assert!(r.nano_cpus >= 1_000_000_000, "{r:?}");
    assert!(r.memory_bytes > 0, "{r:?}");
    let engine = d.engine.unwrap();
    assert!(!engine.engine_version.is_empty());
    assert!(
        engine
            .plugins
            .iter()
            .any(|p| p.r#type == "Network" && p.name == "bridge"),
        "{:?}",
        engine.plugins
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_carries_name_labels_and_limits() {
    let dir = common::Dir::new("docker-spec");
    let Some(exec) = executor(&dir).await else {
        return;
    };
    let mut task = task_with(ContainerSpec {
        // No tag: the local image is used as `:latest`, never pulled.
        image: "swarm-test/busybox".into(),
        command: sh("echo \"$(hostname) $(id -u)\"; echo END"),
        hostname: "box1".into(),
        user: "65534".into(),
        stop_signal: "SIGINT".into(),
        labels: [("app".to_string(), "web".to_string())].into(),
        ..Default::default()
    });
    task.service_id = "svc1".into();
    task.slot = 3;
    task.service_annotations = Some(Annotations {
        name: "web".into(),
        ..Default::default()
    });
    if let Some(spec) = task.spec.as_mut() {
        spec.resources = Some(ResourceRequirements {
            limits: Some(Resources {
                nano_cpus: 250_000_000,
                memory_bytes: 64 << 20,
                generic: Vec::new(),
            }),
            reservations: None,
        });
    }
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    let id = c.container_status().container_id;
    assert!(!id.is_empty(), "prepare creates the container");
    let inspect = exec.client().inspect_container(&id, None).await.unwrap();
    assert_eq!(
        inspect.name.as_deref(),
        Some(format!("/web.3.{}", task.id).as_str())
    );
    let config = inspect.config.unwrap();
    let l = config.labels.unwrap();
    assert_eq!(
        l.get(labels::TASK_ID).map(String::as_str),
        Some(task.id.as_str())
    );
    assert_eq!(l.get(labels::SERVICE_NAME).map(String::as_str), Some("web"));
    assert_eq!(l.get("app").map(String::as_str), Some("web"));
    assert_eq!(config.stop_signal.as_deref(), Some("SIGINT"));
    let host = inspect.host_config.unwrap();
    assert_eq!(host.nano_cpus, Some(250_000_000));
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.network_mode.as_deref(), Some("bridge"));
    c.start().await.unwrap();
    assert_eq!(output(c.as_ref()).await, ["box1 65534", "END"]);
    c.remove().await.unwrap();
    assert!(
        exec.client().inspect_container(&id, None).await.is_err(),
        "the container is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_on_tmpfs_and_configs_are_read_only_files() {
    let dir = common::Dir::new("docker-secrets");
    let Some(exec) = executor(&dir).await else {
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting the secrets tmpfs needs root");
        return;
    }
    let mut deps = Dependencies::default();
    deps.secrets.insert(
        "s1".into(),
        Secret {
            id: "s1".into(),
            spec: Some(SecretSpec {
                data: b"hunter2".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    deps.configs.insert(
        "c1".into(),
        Config {
            id: "c1".into(),
            spec: Some(ConfigSpec {
                data: b"level=debug".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let task = task_with(ContainerSpec {
        command: sh("cat /run/secrets/pw; echo; cat /etc/app.conf; echo; \
             stat -f -c %T /run/secrets/pw; stat -c %a /run/secrets/pw; \
             (echo x > /run/secrets/pw) 2>/dev/null && echo writable || echo read-only; \
             echo END"),
        secrets: vec![SecretReference {
            secret_id: "s1".into(),
            secret_name: "password".into(),
            file: Some(FileTarget {
                name: "pw".into(),
                mode: 0o400,
                ..Default::default()
            }),
        }],
        configs: vec![ConfigReference {
            config_id: "c1".into(),
            config_name: "app".into(),
            file: Some(FileTarget {
                name: "/etc/app.conf".into(),
                ..Default::default()
            }),
        }],
        ..Default::default()
    });
    let c = exec.controller(&task, &deps).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    assert_eq!(
        output(c.as_ref()).await,
        ["hunter2", "level=debug", "tmpfs", "400", "read-only", "END"]
    );
    let secrets = exec.task_dir(&task.id).join("run/secrets");
    c.remove().await.unwrap();
    assert!(!exec.task_dir(&task.id).exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(secrets.to_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_is_killed_and_reported() {
    let dir = common::Dir::new("docker-health");
    let Some(exec) = executor(&dir).await else {
        return;
    };
    let task = task_with(ContainerSpec {
        command: sh("echo ready; exec sleep 600"),
        healthcheck: Some(HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /tmp/healthy".into()],
            interval: Some(swarm_api::v1::Duration::from_millis(200)),
            timeout: Some(swarm_api::v1::Duration::from_secs(2)),
            retries: 2,
            start_period: None,
        }),
        ..Default::default()
    });
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    assert!(
        c.container_status().pid > 0,
        "the pid of a running container"
    );
    let err = tokio::time::timeout(common::WAIT, c.wait())
        .await
        .expect("the check fails in time")
        .unwrap_err();
    let ExecError::Unhealthy(why) = &err else {
        panic!("{err}");
    };
    assert!(why.contains("consecutive failed health checks"), "{why}");
    assert_eq!(c.container_status().exit_code, 137, "killed");
    // Asked again, the answer stays.
    assert!(matches!(c.wait().await, Err(ExecError::Unhealthy(_))));
    c.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_container_runs_on() {
    let dir = common::Dir::new("docker-healthy");
    let Some(exec) = executor(&dir).await else {
        return;
    };
    let task = task_with(ContainerSpec {
        command: sh("sleep 1.5; echo END"),
        healthcheck: Some(HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: Some(swarm_api::v1::Duration::from_millis(200)),
            retries: 1,
            ..Default::default()
        }),
        ..Default::default()
    });
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    assert_eq!(output(c.as_ref()).await, ["END"]);
    c.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_follows_its_running_containers() {
    let dir = common::Dir::new("docker-recover");
    let Some(exec) = executor(&dir).await else {
        return;
    };
    let running = task_with(ContainerSpec {
        command: sh("echo ready; trap 'echo bye; exit 7' TERM; while :; do sleep 0.05; done"),
        ..Default::default()
    });
    let exited = task_with(ContainerSpec {
        command: sh("exit 5"),
        ..Default::default()
    });
    let never_started = task_with(ContainerSpec {
        command: sh("echo never"),
        ..Default::default()
    });
    {
        // The agent before its restart.
        let c = exec.controller(&running, &Dependencies::default()).unwrap();
        c.prepare().await.unwrap();
        c.start().await.unwrap();
        common::eventually("ready", || async {
            c.logs().iter().any(|l| l.line == "ready").then_some(())
        })
        .await;
        let c = exec.controller(&exited, &Dependencies::default()).unwrap();
        c.prepare().await.unwrap();
        c.start().await.unwrap();
        assert_eq!(c.wait().await.unwrap().code, 5);
        let c = exec
            .controller(&never_started, &Dependencies::default())
            .unwrap();
        c.prepare().await.unwrap();
    }
    // A new agent: new controllers for the same tasks.
    let c = exec.controller(&running, &Dependencies::default()).unwrap();
    assert_eq!(c.recover().await.unwrap(), Recovered::Running);
    assert!(c.container_status().pid > 0);
    common::eventually("old output", || async {
        c.logs().iter().any(|l| l.line == "ready").then_some(())
    })
    .await;
    c.shutdown(Duration::from_secs(10), "SIGTERM")
        .await
        .unwrap();
    assert_eq!(c.wait().await.unwrap().code, 7);
    c.remove().await.unwrap();
    assert!(!docker_image::has_container(exec.client(), &running.id));

    let c = exec.controller(&exited, &Dependencies::default()).unwrap();
    assert_eq!(c.recover().await.unwrap(), Recovered::Gone);
    assert_eq!(c.container_status().exit_code, 5);
    assert!(docker_image::has_container(exec.client(), &exited.id));
    c.remove().await.unwrap();
    assert!(!docker_image::has_container(exec.client(), &exited.id));

    // Prepared but never started: preparing again adopts the container.
    let c = exec
        .controller(&never_started, &Dependencies::default())
        .unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    assert!(c.wait().await.unwrap().success());
    c.remove().await.unwrap();
    assert!(!docker_image::has_container(
        exec.client(),
        &never_started.id
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_and_missing_images_are_refused_at_prepare() {
    let dir = common::Dir::new("docker-refused");
    let Some(exec) = executor(&dir).await else {
        return;
    };
    // A registry on a closed loopback port: the pull fails at once.
    let missing = "127.0.0.1:9/swarm-test/missing:v1";
    let c = exec
        .controller(
            &task_with(ContainerSpec {
                image: missing.into(),
                command: sh("true"),
                ..Default::default()
            }),
            &Dependencies::default(),
        )
        .unwrap();
    let err = c.prepare().await.unwrap_err();
    let ExecError::ImagePull { image, reason } = &err else {
        panic!("{err}");
    };
    assert_eq!(image, missing);
    assert!(!reason.is_empty());
    assert!(err.to_string().contains("is not on this node"), "{err}");
    c.remove().await.unwrap();

    type Expect = fn(&ExecError) -> bool;
    let cases: Vec<(ContainerSpec, Expect)> = vec![
        (
            ContainerSpec {
                command: sh("true"),
                secrets: vec![SecretReference {
                    secret_id: "nope".into(),
                    secret_name: "nope".into(),
                    file: None,
                }],
                ..Default::default()
            },
            |e| matches!(e, ExecError::MissingDependency { kind: "secret", .. }),
        ),
        (
            ContainerSpec {
                command: sh("true"),
                stop_signal: "SIGNOPE".into(),
                ..Default::default()
            },
            |e| matches!(e, ExecError::InvalidSpec(_)),
        ),
        (
            ContainerSpec {
                command: sh("true"),
                env: vec!["NOEQUALS".into()],
                ..Default::default()
            },
            |e| matches!(e, ExecError::InvalidSpec(_)),
        ),
    ];
    for (spec, want) in cases {
        let task = task_with(spec.clone());
        let c = exec.controller(&task, &Dependencies::default()).unwrap();
        let err = c.prepare().await.unwrap_err();
        assert!(want(&err), "{spec:?}: {err}");
        c.remove().await.unwrap();
        assert!(!docker_image::has_container(exec.client(), &task.id));
    }
    // A task without an image is not for this executor.
    let mut task = task_with(ContainerSpec::default());
    if let Some(c) = task.spec.as_mut().and_then(|s| s.container.as_mut()) {
        c.image.clear();
    }
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    assert!(matches!(c.prepare().await, Err(ExecError::InvalidSpec(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_engine_is_a_clear_error() {
    let err = DockerExecutor::builder()
        .socket("/nonexistent/docker.sock")
        .connect()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("connect to the Docker engine at /nonexistent/docker.sock"),
        "{err}"
    );
}
