//! `swarmd --executor runc` end to end: a manager (drained) and a worker
//! running tasks as runc containers from an image directory holding a
//! busybox root filesystem. The service's tasks run, their output reaches
//! `swarmctl service logs`, and scaling to zero leaves no container.
//!
//! Needs root, runc and a static busybox (`scripts/setup` installs both);
//! skips with the reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use swarm_agent::exec::oci::{DEFAULT_RUNC, ROOTFS_DIR, RUNC_STATE_DIR, busybox_rootfs};
use swarm_examples::local::query;
use swarm_examples::local::{Binaries, ClusterOptions, LocalCluster, Role};

/// The nodes' addresses (other tests use other 127.x.y networks).
const NET: &str = "127.0.13";
const BUSYBOX: &str = "/bin/busybox";
const LIMIT: Duration = Duration::from_secs(60);

fn skip_reason() -> Option<String> {
    // /proc/self belongs to the process's effective user.
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    if euid != 0 {
        return Some("needs root".into());
    }
    for p in [DEFAULT_RUNC, BUSYBOX] {
        if !Path::new(p).exists() {
            return Some(format!("{p} is missing (scripts/setup installs it)"));
        }
    }
    None
}

/// Containers runc knows under the worker's task root.
fn containers(state_dir: &Path) -> Vec<String> {
    let root = state_dir
        .join(swarm_agent::agent::TASKS_DIR)
        .join(RUNC_STATE_DIR);
    if !root.exists() {
        return Vec::new();
    }
    let out = Command::new(DEFAULT_RUNC)
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "runc list: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_runs_as_runc_containers() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP runc end-to-end: {why}");
        return;
    }
    let bins = Binaries {
        swarmd: env!("CARGO_BIN_EXE_swarmd").into(),
        swarmctl: env!("CARGO_BIN_EXE_swarmctl").into(),
    };
    let mut c = LocalCluster::new(bins, ClusterOptions::for_test(NET, "runc").unwrap()).unwrap();
    let images = c.root().join("images");
    busybox_rootfs(&images.join("busybox").join(ROOTFS_DIR), Path::new(BUSYBOX)).unwrap();
    c.init("m1", &format!("{NET}.1"), &["--availability", "drain"])
        .await
        .unwrap();
    let images_arg = images.display().to_string();
    c.join(
        "w1",
        &format!("{NET}.2"),
        Role::Worker,
        &["--executor", "runc", "--images-dir", &images_arg],
    )
    .await
    .unwrap();
    let w1_state = c.node("w1").unwrap().state_dir.clone();
    c.ctl(&[
        "service",
        "create",
        "--name",
        "box",
        "--replicas",
        "2",
        "--detach",
        "busybox",
        "sh",
        "-c",
        // PID 1 of a container ignores SIGTERM unless it handles it.
        "trap 'exit 0' TERM; echo hello from $(hostname); sleep 3600 & wait",
    ])
    .unwrap();
    c.wait_for("2 runc tasks running", LIMIT, |api| async move {
        let tasks = api.tasks("box").await?;
        Ok((tasks.iter().filter(|t| query::is_running(t)).count() == 2).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(containers(&w1_state).len(), 2, "two runc containers");

    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let out = c.ctl(&["service", "logs", "box"]).unwrap();
        if out.lines().filter(|l| l.contains("| hello from ")).count() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no greeting from both tasks: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    c.ctl(&["service", "scale", "box=0", "--detach"]).unwrap();
    let deadline = std::time::Instant::now() + LIMIT;
    while !containers(&w1_state).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "containers left: {:?}",
            containers(&w1_state)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
