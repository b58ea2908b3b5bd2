//! The Docker engine and image the Docker executor's tests run on.
//!
//! There is no registry to pull from here: the test image is made from
//! Debian's busybox-static (a root filesystem of one static binary and
//! its applet links) and imported into the local engine as [`IMAGE`],
//! once (importing again only re-tags it). Without an engine answering on
//! the socket, the tests skip and say so.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a test helper module: each test uses a different part"
)]

use std::path::Path;
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::{CreateImageOptionsBuilder, ListContainersOptionsBuilder};
use futures::StreamExt;
use swarm_agent::exec::docker::{DEFAULT_SOCKET, DockerExecutor, labels};

/// The test image.
pub const IMAGE: &str = "swarm-test/busybox:latest";

/// Debian busybox-static's binary.
const BUSYBOX: &str = "/bin/busybox";

static IMPORTED: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

/// An executor keeping task files under `root`, with [`IMAGE`] imported;
/// `None` (and a note on stderr) when no engine answers.
pub async fn executor(root: &Path) -> Option<DockerExecutor> {
    if !Path::new(DEFAULT_SOCKET).exists() {
        eprintln!("skipped: no Docker engine socket at {DEFAULT_SOCKET}");
        return None;
    }
    let exec = match DockerExecutor::builder().root(root).connect().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("skipped: no Docker engine answers on {DEFAULT_SOCKET}: {e}");
            return None;
        }
    };
    ensure_image(exec.client()).await;
    Some(exec)
}

/// Imports [`IMAGE`] unless the engine has it.
pub async fn ensure_image(docker: &Docker) {
    let mut done = IMPORTED.lock().await;
    if *done || docker.inspect_image(IMAGE).await.is_ok() {
        *done = true;
        return;
    }
    let tar = rootfs_tar();
    let (repo, tag) = IMAGE.split_once(':').unwrap();
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .build();
    let mut progress =
        docker.create_image(Some(options), Some(bollard::body_full(tar.into())), None);
    while let Some(item) = progress.next().await {
        let info = item.expect("import the test image");
        assert!(info.error_detail.is_none(), "import: {info:?}");
    }
    docker
        .inspect_image(IMAGE)
        .await
        .expect("the imported image");
    *done = true;
}

/// A tar of a root filesystem: busybox, a link per applet, /tmp and the
/// usual account files.
fn rootfs_tar() -> Vec<u8> {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing: install busybox-static (bash scripts/setup does)"
    );
    let dir = std::env::temp_dir().join(format!("swarm-test-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["bin", "tmp", "etc", "run"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = dir.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    let out = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {:?}", out.status);
    let _ = std::fs::remove_dir_all(&dir);
    out.stdout
}

/// True when the engine has any container of `task_id` (call from a
/// multi-threaded runtime).
pub fn has_container(docker: &Docker, task_id: &str) -> bool {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            let filter = std::collections::HashMap::from([(
                "label",
                vec![format!("{}={task_id}", labels::TASK_ID)],
            )]);
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build();
            !docker
                .list_containers(Some(options))
                .await
                .unwrap()
                .is_empty()
        })
    })
}
