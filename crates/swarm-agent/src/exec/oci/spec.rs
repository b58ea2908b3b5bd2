//! A task as an OCI runtime `config.json`: a pure mapping from the task
//! spec and what the controller prepared, checked before anything is
//! made.

use std::collections::BTreeMap;
use std::path::PathBuf;

use swarm_api::v1::{ContainerSpec, MountType, Task};

use super::config::{
    Capabilities, Cpu, DeviceRule, Linux, LinuxResources, Memory, Mount, Namespace, OCI_VERSION,
    Pids, Process, Root, Spec, User,
};
use super::user::ContainerUser;
use crate::exec::process::health::HealthPlan;
use crate::exec::{ExecError, parse_signal};

/// `PATH` of container processes unless the spec sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The CFS period used for CPU limits, in microseconds (as Docker).
pub(crate) const CPU_PERIOD: u64 = 100_000;

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows (for `ALL`).
const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths hidden from containers (as runc's default spec).
const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// Paths made read-only in containers (as runc's default spec).
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What the controller adds to the task spec.
#[derive(Debug, Clone)]
pub(crate) struct Extras {
    /// The root filesystem (mounted by the controller).
    pub(crate) rootfs: PathBuf,
    /// The user, resolved against the root filesystem.
    pub(crate) user: ContainerUser,
    /// The network namespace to join; `None`: the host's.
    pub(crate) netns: Option<PathBuf>,
    /// The cgroup path.
    pub(crate) cgroups_path: String,
    /// Pids limit, if any.
    pub(crate) pids_limit: Option<i64>,
    /// Read-only file bind mounts: `(host file, container path)`
    /// (resolv.conf, hosts, hostname, secrets, configs).
    pub(crate) files: Vec<(PathBuf, String)>,
    /// The node's init binary (a static tini), for specs asking for one.
    pub(crate) init: Option<PathBuf>,
}

/// Where the init binary appears in a container (Docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

fn unsupported(what: &str) -> ExecError {
    ExecError::Unsupported {
        executor: super::EXECUTOR_NAME.to_string(),
        what: what.to_string(),
    }
}

/// A capability name as the kernel spells it (`net_admin` →
/// `CAP_NET_ADMIN`); `ALL` stays `ALL`.
fn capability(name: &str) -> Result<String, ExecError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(ExecError::InvalidSpec(format!(
            "unknown capability {name:?}"
        )))
    }
}

/// The capability set: Docker's defaults, plus `add`, minus `drop`
/// (`ALL` in either means every capability).
pub(crate) fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<String>, ExecError> {
    let add = add
        .iter()
        .map(|c| capability(c))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = drop
        .iter()
        .map(|c| capability(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    let wanted: Vec<String> = if add.iter().any(|c| c == "ALL") {
        ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    } else {
        add
    };
    for c in wanted {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// Checks what the spec asks for without building anything.
pub(crate) fn validate(spec: &ContainerSpec) -> Result<(), ExecError> {
    if spec.image.trim().is_empty() {
        return Err(ExecError::InvalidSpec(
            "the runc executor needs an image".into(),
        ));
    }
    if spec.command.is_empty() && spec.args.is_empty() {
        return Err(ExecError::InvalidSpec(
            "the runc executor needs a command (images carry no entrypoint)".into(),
        ));
    }
    if spec.tty {
        return Err(unsupported("tty"));
    }
    crate::exec::checks::env(spec)?;
    crate::exec::checks::container_dir(spec)?;
    parse_signal(&spec.stop_signal)?;
    HealthPlan::from_spec(spec.healthcheck.as_ref())?;
    capabilities(&spec.capability_add, &spec.capability_drop)?;
    spec_mounts(spec)?;
    Ok(())
}

/// The spec's own mounts (bind and tmpfs; volumes are not supported).
fn spec_mounts(spec: &ContainerSpec) -> Result<Vec<Mount>, ExecError> {
    spec.mounts
        .iter()
        .map(|m| {
            if !m.target.starts_with('/') {
                return Err(ExecError::InvalidSpec(format!(
                    "mount target {:?} is not an absolute path",
                    m.target
                )));
            }
            let rw = if m.read_only { "ro" } else { "rw" };
            match m.r#type() {
                MountType::Bind if m.source.starts_with('/') => Ok(Mount {
                    destination: m.target.clone(),
                    kind: "bind".into(),
                    source: m.source.clone(),
                    options: vec!["rbind".into(), rw.into()],
                }),
                MountType::Bind => Err(ExecError::InvalidSpec(format!(
                    "bind mount source {:?} is not an absolute path",
                    m.source
                ))),
                MountType::Tmpfs if m.source.is_empty() => Ok(Mount {
                    destination: m.target.clone(),
                    kind: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options: vec!["nosuid".into(), "nodev".into(), rw.into()],
                }),
                MountType::Tmpfs => Err(ExecError::InvalidSpec(format!(
                    "tmpfs mount at {:?} has a source",
                    m.target
                ))),
                MountType::Volume => Err(unsupported("volume mounts")),
            }
        })
        .collect()
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: destination.into(),
        kind: kind.into(),
        source: source.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

/// The filesystems every container gets.
fn base_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
    ]
}

/// The host name of the task's container: the spec's, else the first 12
/// characters of the task id (as Docker uses the container id).
pub(crate) fn hostname(task: &Task, spec: &ContainerSpec) -> String {
    if spec.hostname.is_empty() {
        task.id.chars().take(12).collect()
    } else {
        spec.hostname.clone()
    }
}

/// The environment: `PATH`, `HOSTNAME`, `HOME`, then the spec's entries
/// (which override those).
fn environment(spec: &ContainerSpec, hostname: &str, home: &str) -> Vec<String> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOSTNAME".into(), hostname.into()),
        ("HOME".into(), home.into()),
    ];
    for e in &spec.env {
        if let Some((k, v)) = e.split_once('=') {
            match env.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => env.push((k.to_string(), v.to_string())),
            }
        }
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn resources(task: &Task, pids_limit: Option<i64>) -> LinuxResources {
    let limits = task
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let nano_cpus = limits.map_or(0, |l| l.nano_cpus);
    let memory = limits.map_or(0, |l| l.memory_bytes);
    LinuxResources {
        devices: vec![DeviceRule {
            allow: false,
            access: "rwm".into(),
        }],
        memory: (memory > 0).then_some(Memory { limit: memory }),
        cpu: (nano_cpus > 0).then(|| Cpu {
            // At least 1 ms per period: the kernel refuses less.
            quota: (i128::from(nano_cpus) * i128::from(CPU_PERIOD) / 1_000_000_000)
                .clamp(1_000, i128::from(i64::MAX)) as i64,
            period: CPU_PERIOD,
        }),
        pids: pids_limit.filter(|p| *p > 0).map(|limit| Pids { limit }),
    }
}

/// The `config.json` of `task`'s container.
pub(crate) fn build(task: &Task, spec: &ContainerSpec, extras: &Extras) -> Result<Spec, ExecError> {
    validate(spec)?;
    let hostname = hostname(task, spec);
    let caps = capabilities(&spec.capability_add, &spec.capability_drop)?;
    let mut mounts = base_mounts();
    mounts.extend(spec_mounts(spec)?);
    for (host, target) in &extras.files {
        mounts.push(Mount {
            destination: target.clone(),
            kind: "bind".into(),
            source: host.to_string_lossy().into_owned(),
            options: vec!["rbind".into(), "ro".into()],
        });
    }
    let mut args: Vec<String> = spec.command.iter().chain(&spec.args).cloned().collect();
    if spec.init {
        // As Docker's `--init`: a static tini is PID 1, forwards signals to
        // the program and reaps orphans.
        let init = extras.init.as_ref().ok_or_else(|| {
            unsupported("an init process (no docker-init or tini binary on this node)")
        })?;
        mounts.push(Mount {
            destination: INIT_PATH.into(),
            kind: "bind".into(),
            source: init.to_string_lossy().into_owned(),
            options: vec!["bind".into(), "ro".into()],
        });
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let mut namespaces: Vec<Namespace> = ["pid", "ipc", "uts", "mount"]
        .iter()
        .map(|k| Namespace {
            kind: k.to_string(),
            path: None,
        })
        .collect();
    if let Some(ns) = &extras.netns {
        namespaces.push(Namespace {
            kind: "network".into(),
            path: Some(ns.to_string_lossy().into_owned()),
        });
    }
    Ok(Spec {
        oci_version: OCI_VERSION.into(),
        process: Process {
            terminal: false,
            user: User {
                uid: extras.user.uid,
                gid: extras.user.gid,
                additional_gids: extras.user.additional_gids.clone(),
            },
            args,
            env: environment(spec, &hostname, &extras.user.home),
            cwd: if spec.dir.is_empty() {
                "/".into()
            } else {
                spec.dir.clone()
            },
            capabilities: Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
            },
            rlimits: Vec::new(),
            no_new_privileges: true,
        },
        root: Root {
            path: extras.rootfs.to_string_lossy().into_owned(),
            readonly: spec.read_only,
        },
        hostname,
        mounts,
        linux: Linux {
            namespaces,
            cgroups_path: extras.cgroups_path.clone(),
            resources: resources(task, extras.pids_limit),
            masked_paths: MASKED_PATHS.iter().map(|p| p.to_string()).collect(),
            readonly_paths: READONLY_PATHS.iter().map(|p| p.to_string()).collect(),
        },
        annotations: spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use swarm_api::v1::{Mount as SpecMount, ResourceRequirements, Resources, TaskSpec};

    use super::*;

    fn task(spec: ContainerSpec, limits: Option<Resources>) -> Task {
        Task {
            id: "abcdef0123456789".into(),
            spec: Some(TaskSpec {
                container: Some(spec),
                resources: limits.map(|l| ResourceRequirements {
                    limits: Some(l),
                    reservations: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn extras() -> Extras {
        Extras {
            rootfs: PathBuf::from("/b/rootfs"),
            user: ContainerUser {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![50],
                home: "/home/app".into(),
            },
            netns: Some(PathBuf::from("/run/netns/swt-x")),
            cgroups_path: "/swarm-runc/swarm-x".into(),
            pids_limit: Some(64),
            files: vec![(PathBuf::from("/b/resolv.conf"), "/etc/resolv.conf".into())],
            init: Some(PathBuf::from("/usr/bin/tini-static")),
        }
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "busybox".into(),
            command: vec!["/bin/sh".into(), "-c".into()],
            args: vec!["echo hi".into()],
            env: vec!["PATH=/bin".into(), "A=b=c".into()],
            dir: "/srv".into(),
            hostname: "web-1".into(),
            capability_add: vec!["net_admin".into()],
            capability_drop: vec!["CAP_MKNOD".into()],
            read_only: true,
            mounts: vec![SpecMount {
                r#type: MountType::Bind as i32,
                source: "/data".into(),
                target: "/data".into(),
                read_only: true,
            }],
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_config_carries_the_spec() {
        let limits = Resources {
            nano_cpus: 500_000_000,
            memory_bytes: 64 << 20,
            generic: Vec::new(),
        };
        let s = build(&task(spec(), Some(limits)), &spec(), &extras()).unwrap();
        assert_eq!(s.process.args, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(
            s.process.env,
            ["PATH=/bin", "HOSTNAME=web-1", "HOME=/home/app", "A=b=c"]
        );
        assert_eq!(s.process.cwd, "/srv");
        assert_eq!(
            (s.process.user.uid, s.process.user.gid),
            (1000, 1001),
            "the resolved user"
        );
        assert_eq!(s.process.user.additional_gids, [50]);
        assert!(s.process.no_new_privileges);
        let caps = &s.process.capabilities.bounding;
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_MKNOD".to_string()));
        assert!(caps.contains(&"CAP_KILL".to_string()));
        assert_eq!(s.hostname, "web-1");
        assert!(s.root.readonly);
        assert_eq!(s.annotations.get("app").map(String::as_str), Some("web"));

        let dests: Vec<&str> = s.mounts.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/data",
                "/etc/resolv.conf"
            ]
        );
        assert_eq!(s.mounts[6].options, ["rbind", "ro"]);
        assert_eq!(s.mounts[7].source, "/b/resolv.conf");

        let net = s
            .linux
            .namespaces
            .iter()
            .find(|n| n.kind == "network")
            .unwrap();
        assert_eq!(net.path.as_deref(), Some("/run/netns/swt-x"));
        assert_eq!(s.linux.cgroups_path, "/swarm-runc/swarm-x");
        let r = &s.linux.resources;
        assert_eq!(r.memory.as_ref().unwrap().limit, 64 << 20);
        let cpu = r.cpu.as_ref().unwrap();
        assert_eq!((cpu.quota, cpu.period), (50_000, 100_000));
        assert_eq!(r.pids.as_ref().unwrap().limit, 64);

        // The JSON uses the specification's names.
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["ociVersion"], "1.0.2");
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["linux"]["cgroupsPath"], "/swarm-runc/swarm-x");
        assert_eq!(json["linux"]["namespaces"][4]["type"], "network");
        assert_eq!(json["mounts"][0]["type"], "proc");
    }

    #[test]
    fn defaults_without_limits_or_networks() {
        let plain = ContainerSpec {
            image: "busybox".into(),
            command: vec!["true".into()],
            ..Default::default()
        };
        let mut x = extras();
        x.netns = None;
        x.pids_limit = None;
        let s = build(&task(plain.clone(), None), &plain, &x).unwrap();
        assert!(
            s.linux.namespaces.iter().all(|n| n.kind != "network"),
            "no networks: the host's namespace"
        );
        assert_eq!(s.hostname, "abcdef012345");
        assert_eq!(s.process.cwd, "/");
        assert_eq!(s.process.capabilities.bounding.len(), 14);
        let r = &s.linux.resources;
        assert_eq!((&r.memory, &r.cpu, &r.pids), (&None, &None, &None));
        assert_eq!(s.process.env[0], format!("PATH={DEFAULT_PATH}"));
    }

    #[test]
    fn an_init_runs_the_program_as_its_child() {
        let with_init = ContainerSpec {
            init: true,
            args: vec!["x".into()],
            ..spec()
        };
        let s = build(&task(with_init.clone(), None), &with_init, &extras()).unwrap();
        assert_eq!(s.process.args[..2], [INIT_PATH, "--"]);
        assert_eq!(s.process.args.last().map(String::as_str), Some("x"));
        let m = s
            .mounts
            .iter()
            .find(|m| m.destination == INIT_PATH)
            .unwrap();
        assert_eq!(m.source, "/usr/bin/tini-static");
        assert!(m.options.contains(&"ro".to_string()));
        let mut none = extras();
        none.init = None;
        assert!(matches!(
            build(&task(with_init.clone(), None), &with_init, &none),
            Err(ExecError::Unsupported { .. })
        ));
    }

    #[test]
    fn capabilities_add_and_drop() {
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert!(capabilities(&[], &s(&["ALL"])).unwrap().is_empty());
        assert_eq!(
            capabilities(&s(&["sys_admin"]), &s(&["all"])).unwrap(),
            ["CAP_SYS_ADMIN"]
        );
        assert_eq!(capabilities(&s(&["ALL"]), &[]).unwrap().len(), 41);
        assert!(capabilities(&s(&["CAP_NOPE"]), &[]).is_err());
    }

    #[test]
    fn bad_specs_are_refused() {
        let ok = spec();
        let cases: Vec<(&str, ContainerSpec)> = vec![
            (
                "no image",
                ContainerSpec {
                    image: String::new(),
                    ..ok.clone()
                },
            ),
            (
                "no command",
                ContainerSpec {
                    command: vec![],
                    args: vec![],
                    ..ok.clone()
                },
            ),
            (
                "tty",
                ContainerSpec {
                    tty: true,
                    ..ok.clone()
                },
            ),
            (
                "relative dir",
                ContainerSpec {
                    dir: "srv".into(),
                    ..ok.clone()
                },
            ),
            (
                "bad env",
                ContainerSpec {
                    env: vec!["NOEQUALS".into()],
                    ..ok.clone()
                },
            ),
            (
                "volume",
                ContainerSpec {
                    mounts: vec![SpecMount {
                        r#type: MountType::Volume as i32,
                        source: "v".into(),
                        target: "/v".into(),
                        read_only: false,
                    }],
                    ..ok.clone()
                },
            ),
            (
                "bad signal",
                ContainerSpec {
                    stop_signal: "SIGNOPE".into(),
                    ..ok.clone()
                },
            ),
        ];
        assert!(validate(&ok).is_ok());
        for (what, bad) in cases {
            assert!(validate(&bad).is_err(), "{what}");
        }
    }
}
