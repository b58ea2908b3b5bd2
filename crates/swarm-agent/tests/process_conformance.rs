//! The executor conformance suite on the process executor, plus what is
//! specific to it: secrets on tmpfs, configs, users.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::sync::Arc;

use swarm_agent::conformance::Suite;
use swarm_agent::{Controller, Dependencies, ExecError, Executor, ProcessExecutor};
use swarm_api::v1::*;

/// Task directories of the suite; each case removes its own task, which
/// the suite checks.
fn root() -> std::path::PathBuf {
    std::env::temp_dir().join("swarm-agent-conformance")
}

fn suite() -> Suite {
    let root = root();
    let executor = ProcessExecutor::new(&root);
    Suite::new(Arc::new(executor)).leftovers(move |id| root.join(id).exists())
}

swarm_agent::executor_conformance!(suite());

fn task_with(spec: ContainerSpec) -> Task {
    Task {
        id: swarm_api::id::new_id(),
        spec: Some(TaskSpec {
            container: Some(spec),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn output(c: &dyn Controller) -> Vec<String> {
    c.wait().await.unwrap().check().unwrap();
    // The reaper and the output readers finish independently: wait for
    // the end-of-output marker.
    common::eventually("output", || async {
        let lines: Vec<String> = c.logs().into_iter().map(|l| l.line).collect();
        lines.iter().any(|l| l == "END").then_some(lines)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_live_on_tmpfs_and_go_with_the_task() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting tmpfs needs root");
        return;
    }
    let dir = common::Dir::new("secrets");
    let exec = ProcessExecutor::new(&dir.0);
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
        command: vec![
            "/bin/sh".into(),
            "-c".into(),
            "cat $SWARM_SECRETS_DIR/pw; echo; cat $SWARM_CONFIGS_DIR/etc/app.conf; echo; \
             stat -f -c %T $SWARM_SECRETS_DIR; stat -c %a $SWARM_SECRETS_DIR/pw; echo END"
                .into(),
        ],
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
    c.prepare().await.unwrap();
    let secrets_dir = dir.0.join(&task.id).join("run/secrets");
    // Mounted once, even when prepared twice.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let n = mounts
        .lines()
        .filter(|l| l.contains(secrets_dir.to_str().unwrap()))
        .count();
    assert_eq!(n, 1, "{mounts}");
    c.start().await.unwrap();
    let lines = output(c.as_ref()).await;
    assert_eq!(lines, ["hunter2", "level=debug", "tmpfs", "400", "END"]);
    c.remove().await.unwrap();
    assert!(!dir.0.join(&task.id).exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(secrets_dir.to_str().unwrap()));
}

#[tokio::test]
async fn unassigned_secret_and_bad_specs_are_refused_at_prepare() {
    let dir = common::Dir::new("refused");
    let exec = ProcessExecutor::new(&dir.0);
    type Expect = fn(&ExecError) -> bool;
    let cases: Vec<(ContainerSpec, Expect)> = vec![
        (
            ContainerSpec {
                command: vec!["true".into()],
                secrets: vec![SecretReference {
                    secret_id: "nope".into(),
                    secret_name: "nope".into(),
                    file: None,
                }],
                ..Default::default()
            },
            |e| matches!(e, ExecError::MissingDependency { kind: "secret", .. }),
        ),
        (ContainerSpec::default(), |e| {
            matches!(e, ExecError::InvalidSpec(_))
        }),
        (
            ContainerSpec {
                command: vec!["true".into()],
                user: "no-such-user-here".into(),
                ..Default::default()
            },
            |e| matches!(e, ExecError::UnknownUser(_)),
        ),
        (
            ContainerSpec {
                command: vec!["true".into()],
                stop_signal: "SIGNOPE".into(),
                ..Default::default()
            },
            |e| matches!(e, ExecError::InvalidSpec(_)),
        ),
        (
            ContainerSpec {
                command: vec!["true".into()],
                tty: true,
                ..Default::default()
            },
            |e| matches!(e, ExecError::Unsupported { .. }),
        ),
    ];
    for (spec, want) in cases {
        let c = exec
            .controller(&task_with(spec.clone()), &Dependencies::default())
            .unwrap();
        let err = c.prepare().await.unwrap_err();
        assert!(want(&err), "{spec:?}: {err}");
    }
}

#[tokio::test]
async fn runs_as_the_given_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: changing user needs root");
        return;
    }
    let dir = common::Dir::new("user");
    let exec = ProcessExecutor::new(&dir.0);
    let c = exec
        .controller(
            &task_with(ContainerSpec {
                command: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "id -u; id -g; echo END".into(),
                ],
                user: "65534:65533".into(),
                ..Default::default()
            }),
            &Dependencies::default(),
        )
        .unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    assert_eq!(output(c.as_ref()).await, ["65534", "65533", "END"]);
    c.remove().await.unwrap();
}

#[tokio::test]
async fn a_missing_program_fails_to_start() {
    let dir = common::Dir::new("missing");
    let exec = ProcessExecutor::new(&dir.0);
    let c = exec
        .controller(
            &task_with(ContainerSpec {
                command: vec!["/no/such/program".into()],
                ..Default::default()
            }),
            &Dependencies::default(),
        )
        .unwrap();
    c.prepare().await.unwrap();
    assert!(matches!(c.start().await, Err(ExecError::Spawn { .. })));
    c.remove().await.unwrap();
}
