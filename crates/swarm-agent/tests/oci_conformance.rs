//! The executor conformance suite on the OCI (runc) executor, plus what is
//! specific to it: cgroup limits, secrets as files in the container, a
//! task namespace with the embedded DNS, cleanup.
//!
//! Needs root, runc (Debian `runc`) and /bin/busybox (Debian
//! `busybox-static`); skips with a message otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use swarm_agent::conformance::Suite;
use swarm_agent::exec::oci::{self, OciExecutor};
use swarm_agent::{Controller, Dependencies, ExecError, Executor};
use swarm_api::v1::*;

const BUSYBOX: &str = "/bin/busybox";

/// Why the tests cannot run here, if they cannot.
fn missing() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (mounts, cgroups, namespaces)");
    }
    if !Path::new(oci::DEFAULT_RUNC).is_file() {
        return Some("needs runc (bash scripts/setup installs Debian's runc)");
    }
    if !Path::new(BUSYBOX).is_file() {
        return Some("needs /bin/busybox (bash scripts/setup installs busybox-static)");
    }
    None
}

fn skip(test: &str) -> bool {
    match missing() {
        Some(why) => {
            eprintln!("SKIP {test}: {why}");
            true
        }
        None => false,
    }
}

/// Bundles of the suite; each case removes its own task, which the
/// suite checks.
fn root() -> PathBuf {
    std::env::temp_dir().join("swarm-agent-oci-conformance")
}

/// The image store shared by every test: a busybox root filesystem.
fn images() -> PathBuf {
    let dir = std::env::temp_dir().join("swarm-agent-oci-images");
    oci::busybox_rootfs(
        &dir.join("busybox").join(oci::ROOTFS_DIR),
        Path::new(BUSYBOX),
    )
    .unwrap();
    dir
}

fn executor_in(root: &Path) -> OciExecutor {
    OciExecutor::builder(root)
        .images(images())
        .pids_limit(128)
        .build()
        .unwrap()
}

fn base() -> ContainerSpec {
    ContainerSpec {
        image: "busybox".into(),
        ..Default::default()
    }
}

fn suite() -> Option<Suite> {
    if missing().is_some() {
        eprintln!("SKIP oci conformance: {}", missing().unwrap_or_default());
        return None;
    }
    let exec = executor_in(&root());
    let runc_root = exec.runc_root();
    let dir = exec.root().to_path_buf();
    Some(
        Suite::new(Arc::new(exec))
            .base_spec(base())
            .leftovers(move |id| {
                dir.join(id).exists() || runc_root.join(oci::container_id(id)).exists()
            }),
    )
}

swarm_agent::executor_conformance!(optional suite());

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

fn sh(script: &str) -> ContainerSpec {
    ContainerSpec {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..base()
    }
}

/// Waits for the line `marker` in the task's output, and returns all of it.
async fn output_until(c: &dyn Controller, marker: &str) -> Vec<String> {
    common::eventually(marker, || async {
        let lines: Vec<String> = c.logs().into_iter().map(|l| l.line).collect();
        lines.iter().any(|l| l == marker).then_some(lines)
    })
    .await
}

fn mounted(path: &Path) -> bool {
    let p = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p))
}

/// Nothing of the task is left: bundle, mounts, runc state, cgroup.
fn assert_clean(exec: &OciExecutor, task_id: &str) {
    let dir = exec.task_dir(task_id);
    assert!(!dir.exists(), "bundle {} left", dir.display());
    assert!(
        !mounted(&dir.join("rootfs")),
        "root filesystem still mounted"
    );
    assert!(!mounted(&dir.join("run/secrets")), "secrets still mounted");
    let state = exec.runc_root().join(oci::container_id(task_id));
    assert!(!state.exists(), "runc state {} left", state.display());
    let cgroup = Path::new("/sys/fs/cgroup/memory").join(exec.cgroup_path(task_id));
    assert!(!cgroup.exists(), "cgroup {} left", cgroup.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_show_in_the_cgroup_while_the_task_runs() {
    if skip("limits") {
        return;
    }
    let dir = common::Dir::new("oci-limits");
    let exec = executor_in(&dir.0);
    let mut task = task_with(sh("echo ready; exec sleep 60"));
    task.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
        limits: Some(Resources {
            nano_cpus: 250_000_000,
            memory_bytes: 48 << 20,
            generic: Vec::new(),
        }),
        reservations: None,
    });
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    output_until(c.as_ref(), "ready").await;
    let cg = exec.cgroup_path(&task.id);
    let read = |ctl: &str, file: &str| {
        let p = Path::new("/sys/fs/cgroup").join(ctl).join(&cg).join(file);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "25000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(read("pids", "pids.max"), "128");
    let status = c.container_status();
    assert_eq!(status.container_id, oci::container_id(&task.id));
    common::eventually("the container's pid", || async {
        (c.container_status().pid > 0).then_some(())
    })
    .await;
    c.remove().await.unwrap();
    assert_clean(&exec, &task.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_configs_are_files_in_the_container() {
    if skip("secrets") {
        return;
    }
    let dir = common::Dir::new("oci-secrets");
    let exec = executor_in(&dir.0);
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
    let spec = ContainerSpec {
        secrets: vec![SecretReference {
            secret_id: "s1".into(),
            secret_name: "password".into(),
            file: None,
        }],
        configs: vec![ConfigReference {
            config_id: "c1".into(),
            config_name: "app".into(),
            file: Some(FileTarget {
                name: "/etc/app.conf".into(),
                ..Default::default()
            }),
        }],
        user: "nobody".into(),
        hostname: "web-1".into(),
        ..sh(
            "cat /run/secrets/password; echo; cat /etc/app.conf; echo; id -u; hostname; \
              touch /run/secrets/x 2>/dev/null || echo read-only; echo END",
        )
    };
    let task = task_with(spec);
    let c = exec.controller(&task, &deps).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    let exit = c.wait().await.unwrap();
    assert!(exit.success(), "{exit:?}: {:?}", c.logs());
    let lines = output_until(c.as_ref(), "END").await;
    assert_eq!(
        lines,
        [
            "hunter2",
            "level=debug",
            "65534",
            "web-1",
            "read-only",
            "END"
        ]
    );
    let secrets = exec.task_dir(&task.id).join("run/secrets");
    assert!(mounted(&secrets), "secrets on a tmpfs of their own");
    c.remove().await.unwrap();
    assert_clean(&exec, &task.id);
    c.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_networks_runs_in_its_namespace_with_the_embedded_dns() {
    if skip("netns") {
        return;
    }
    use swarm_agent::network::NetworkAttacher;
    use swarm_overlay::allocator::NetworkAllocator;
    use swarm_overlay::ipam::IpamConfig;
    use swarm_overlay::noop::NoopDriver;

    let dir = common::Dir::new("oci-netns");
    let netns_dir = dir.0.join("netns");
    std::fs::create_dir_all(&netns_dir).unwrap();
    // Task namespaces without a data plane: the no-op driver joins no
    // interface, so the container sees loopback only.
    let attacher = Arc::new(
        NetworkAttacher::builder(Arc::new(NoopDriver::new()))
            .sandboxes(true)
            .netns_dir(&netns_dir)
            .upstreams(Vec::new())
            .build()
            .unwrap(),
    );
    let exec = OciExecutor::builder(&dir.0)
        .images(images())
        .networking(attacher.clone())
        .build()
        .unwrap();
    let mut alloc = NetworkAllocator::new(IpamConfig::default());
    let mut net = Network {
        id: "net1".into(),
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: "front".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    alloc.allocate_network(&mut net).unwrap();
    let mut task = task_with(sh(
        "ls /sys/class/net | tr '\\n' ' '; echo; cat /etc/resolv.conf; echo END",
    ));
    task.networks = vec![NetworkAttachment {
        network: Some(net),
        ..Default::default()
    }];
    alloc.allocate_task(&mut task).unwrap();
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    let ns = std::fs::read_dir(&netns_dir).unwrap().count();
    assert_eq!(ns, 1, "the attacher made the task's namespace");
    c.start().await.unwrap();
    c.wait().await.unwrap().check().unwrap();
    let lines = output_until(c.as_ref(), "END").await;
    assert_eq!(
        lines[0].trim(),
        "lo",
        "only the namespace's interfaces: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "nameserver 127.0.0.11"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "options ndots:0"), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("nameserver")).count(),
        1,
        "{lines:?}"
    );
    c.remove().await.unwrap();
    assert_eq!(
        std::fs::read_dir(&netns_dir).unwrap().count(),
        0,
        "the namespace goes with the task"
    );
    assert_clean(&exec, &task.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_images_and_bad_specs_are_refused_at_prepare() {
    if skip("refused") {
        return;
    }
    let dir = common::Dir::new("oci-refused");
    let exec = executor_in(&dir.0);
    type Expect = fn(&ExecError) -> bool;
    let cases: Vec<(ContainerSpec, Expect)> = vec![
        (
            ContainerSpec {
                image: "no-such-image".into(),
                ..sh("true")
            },
            |e| matches!(e, ExecError::ImageNotFound { .. }),
        ),
        (
            ContainerSpec {
                user: "no-such-user".into(),
                ..sh("true")
            },
            |e| matches!(e, ExecError::UnknownUser(_)),
        ),
        (
            ContainerSpec {
                command: vec![],
                ..base()
            },
            |e| matches!(e, ExecError::InvalidSpec(_)),
        ),
        (
            ContainerSpec {
                tty: true,
                ..sh("true")
            },
            |e| matches!(e, ExecError::Unsupported { .. }),
        ),
    ];
    for (spec, want) in cases {
        let task = task_with(spec.clone());
        let c = exec.controller(&task, &Dependencies::default()).unwrap();
        let err = c.prepare().await.unwrap_err();
        assert!(want(&err), "{spec:?}: {err}");
        c.remove().await.unwrap();
        assert_clean(&exec, &task.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_runc_and_recovers_a_running_container() {
    if skip("describe") {
        return;
    }
    let dir = common::Dir::new("oci-recover");
    let exec = executor_in(&dir.0);
    let d = exec.describe().await.unwrap();
    assert_eq!(d.executor, "runc");
    let version = d.engine.unwrap().engine_version;
    assert!(version.starts_with("runc version"), "{version}");

    let task = task_with(sh("echo ready; exec sleep 60"));
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    output_until(c.as_ref(), "ready").await;
    // A new agent's controller for the same task finds the container.
    let again = exec.controller(&task, &Dependencies::default()).unwrap();
    assert_eq!(
        again.recover().await.unwrap(),
        swarm_agent::Recovered::Running
    );
    again.terminate().await.unwrap();
    let exit = tokio::time::timeout(common::WAIT, c.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    again.remove().await.unwrap();
    assert_clean(&exec, &task.id);
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_is_killed() {
    if skip("health") {
        return;
    }
    let dir = common::Dir::new("oci-health");
    let exec = executor_in(&dir.0);
    let task = task_with(ContainerSpec {
        healthcheck: Some(HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /tmp/ok".into()],
            interval: Some(swarm_api::v1::Duration::from_millis(100)),
            retries: 2,
            ..Default::default()
        }),
        ..sh("exec sleep 60")
    });
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    let err = tokio::time::timeout(common::WAIT, c.wait())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ExecError::Unhealthy(_)), "{err}");
    c.remove().await.unwrap();
    assert_clean(&exec, &task.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_init_the_program_is_not_pid_1_and_stops_on_sigterm() {
    if skip("init") {
        return;
    }
    if !oci::INIT_CANDIDATES.iter().any(|p| Path::new(p).is_file()) {
        eprintln!("SKIP init: no static tini (bash scripts/setup installs Debian's tini)");
        return;
    }
    let dir = common::Dir::new("oci-init");
    let exec = executor_in(&dir.0);
    // Without an init, a shell as PID 1 ignores SIGTERM and only the
    // SIGKILL after the grace period would end it.
    let task = task_with(ContainerSpec {
        init: true,
        ..sh("echo pid=$$; echo ready; exec sleep 600")
    });
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    let lines = output_until(c.as_ref(), "ready").await;
    let pid = lines.iter().find_map(|l| l.strip_prefix("pid=")).unwrap();
    assert_ne!(pid, "1", "the init is PID 1, not the program");
    tokio::time::timeout(
        common::WAIT,
        c.shutdown(std::time::Duration::from_secs(600), "SIGTERM"),
    )
    .await
    .expect("SIGTERM reached the program through the init")
    .unwrap();
    let exit = c.wait().await.unwrap();
    assert_eq!(exit.signal, Some(15), "{exit:?}");
    c.remove().await.unwrap();
    assert_clean(&exec, &task.id);
}
