//! A task's network sandbox: a small "pause" container that owns the
//! network namespace the task container then joins
//! (`NetworkMode: container:<sandbox id>`), as Kubernetes does with its
//! pause container.
//!
//! The engine makes each container's namespace itself and cannot start a
//! container in a namespace made by someone else, so the sandbox is
//! started first with `NetworkMode: none` and the agent's
//! [`NetworkAttacher`] joins its namespace (`/proc/<pid>/ns/net`) to the
//! task's overlay networks, with the embedded DNS and the VIPs.
//!
//! The sandbox runs the task's own image (so no other image is needed),
//! but not its programs: the host's static busybox is bind-mounted
//! read-only into it and runs `sleep`, so it works in any image, even one
//! without a shell. Busybox picks its applet by the name it is called
//! with, so it is mounted under the name `busybox` ([`PAUSE_PATH`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use swarm_api::v1::Task;

use super::labels;
use crate::exec::ExecError;
use crate::network::NetworkAttacher;

/// The sandbox's program on the host when none is given: Debian
/// busybox-static's binary.
pub const DEFAULT_SANDBOX_BINARY: &str = "/bin/busybox";

/// Where the sandbox's program is mounted inside the sandbox container.
pub const PAUSE_PATH: &str = "/.swarm-pause/busybox";

/// What the sandbox runs: a sleep of about 68 years.
const PAUSE_ARGS: [&str; 2] = ["sleep", "2147483647"];

use crate::network::RESOLV_CONF;

/// Where the task's `resolv.conf` is written in its directory.
const RESOLV_CONF_FILE: &str = "resolv.conf";

/// The executor's networking: the node's attacher and the sandbox's
/// program.
#[derive(Debug, Clone)]
pub(super) struct Networking {
    pub(super) attacher: Arc<NetworkAttacher>,
    pub(super) binary: PathBuf,
}

impl Networking {
    /// The sandbox's program, checked: a clear error when it is missing.
    pub(super) fn checked_binary(&self) -> Result<&Path, ExecError> {
        if self.binary.is_absolute() && self.binary.is_file() {
            Ok(&self.binary)
        } else {
            Err(ExecError::SandboxBinary {
                path: self.binary.clone(),
            })
        }
    }
}

/// The sandbox container's name: the task container's with `.sandbox`.
pub(super) fn name(task_container: &str) -> String {
    format!("{task_container}.sandbox")
}

/// The engine's create request for the sandbox of `task`: its image, no
/// network but loopback (the attacher adds the rest), the static
/// `binary` mounted read-only at [`PAUSE_PATH`] and run as an
/// unprivileged user with no capabilities. It takes the spec's
/// `hostname` (the task container shares the sandbox's UTS namespace and
/// the engine refuses a hostname for it).
pub(super) fn create_body(
    task: &Task,
    image: &str,
    hostname: &str,
    binary: &Path,
    name: &str,
) -> ContainerCreateBody {
    let entrypoint = std::iter::once(PAUSE_PATH)
        .chain(PAUSE_ARGS)
        .map(str::to_string)
        .collect();
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(entrypoint),
        // A numeric user needs no account in the image.
        user: Some("65534:65534".into()),
        hostname: (!hostname.is_empty()).then(|| hostname.to_string()),
        labels: Some(labels::for_sandbox(task, name)),
        // `sleep` as pid 1 ignores SIGTERM: nothing to wait for.
        stop_signal: Some("SIGKILL".into()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            mounts: Some(vec![Mount {
                typ: Some(MountType::BIND),
                source: Some(binary.to_string_lossy().into_owned()),
                target: Some(PAUSE_PATH.into()),
                read_only: Some(true),
                ..Default::default()
            }]),
            cap_drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes the task's `resolv.conf` in `dir` and returns its read-only
/// bind mount at `/etc/resolv.conf` (the engine then writes none of its
/// own).
pub(super) fn resolv_conf(dir: &Path) -> Result<Mount, ExecError> {
    std::fs::create_dir_all(dir).map_err(ExecError::io(dir))?;
    let path = dir.join(RESOLV_CONF_FILE);
    std::fs::write(&path, RESOLV_CONF).map_err(ExecError::io(&path))?;
    Ok(Mount {
        typ: Some(MountType::BIND),
        source: Some(path.to_string_lossy().into_owned()),
        target: Some("/etc/resolv.conf".into()),
        read_only: Some(true),
        ..Default::default()
    })
}

/// The network mode of a task container in sandbox `id`.
pub(super) fn network_mode(id: &str) -> String {
    format!("container:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_runs_the_static_sleep_in_the_tasks_image() {
        let task = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            ..Default::default()
        };
        let body = create_body(&task, "img", "box", Path::new("/bin/busybox"), "x.sandbox");
        assert_eq!(body.image.as_deref(), Some("img"));
        assert_eq!(
            body.entrypoint,
            Some(vec![
                PAUSE_PATH.to_string(),
                "sleep".into(),
                "2147483647".into()
            ])
        );
        assert_eq!(body.cmd, None);
        assert_eq!(body.hostname.as_deref(), Some("box"));
        let labels = body.labels.unwrap();
        assert_eq!(labels.get(labels::TASK_ID).map(String::as_str), Some("t1"));
        assert_eq!(
            labels.get(labels::ROLE).map(String::as_str),
            Some(labels::SANDBOX_ROLE)
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts[0].source.as_deref(), Some("/bin/busybox"));
        assert_eq!(mounts[0].target.as_deref(), Some(PAUSE_PATH));
        assert_eq!(mounts[0].read_only, Some(true));
        assert!(
            PAUSE_PATH.ends_with("/busybox"),
            "busybox runs the applet named by its argv[0] unless that is busybox"
        );
        assert_eq!(network_mode("abc"), "container:abc");
        assert_eq!(name("web.1.t1"), "web.1.t1.sandbox");
    }
}
