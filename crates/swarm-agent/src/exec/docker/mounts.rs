//! What is mounted into a task container: the spec's mounts, and the
//! task's secrets and configs as read-only bind mounts of files the agent
//! wrote (secrets on a tmpfs, see [`crate::exec::files`]).

use std::fs;
use std::path::{Path, PathBuf};

use bollard::models::{Mount, MountType};
use swarm_api::v1::{ContainerSpec, MountType as SpecMountType};

use crate::exec::{Dependencies, ExecError, files};

/// Where secrets appear inside a container.
pub const SECRETS_TARGET: &str = "/run/secrets";

/// The agent's files of one task: `<dir>/run/secrets` (tmpfs) and
/// `<dir>/configs`.
#[derive(Debug, Clone)]
pub(super) struct TaskFiles {
    dir: PathBuf,
}

impl TaskFiles {
    pub(super) fn new(dir: PathBuf) -> Self {
        TaskFiles { dir }
    }

    /// The task's directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn secrets_dir(&self) -> PathBuf {
        self.dir.join("run").join("secrets")
    }

    fn configs_dir(&self) -> PathBuf {
        self.dir.join("configs")
    }

    /// Writes the task's secrets and configs (idempotent).
    pub(super) fn write(&self, spec: &ContainerSpec, deps: &Dependencies) -> Result<(), ExecError> {
        if spec.secrets.is_empty() && spec.configs.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(ExecError::io(&self.dir))?;
        files::write_configs(&self.configs_dir(), &spec.configs, deps)?;
        files::write_secrets(&self.secrets_dir(), &spec.secrets, deps)
    }

    /// The read-only bind mounts of the files [`TaskFiles::write`] writes.
    pub(super) fn mounts(&self, spec: &ContainerSpec) -> Result<Vec<Mount>, ExecError> {
        let mut mounts = Vec::new();
        let secrets = self.secrets_dir();
        for r in &spec.secrets {
            let name = files::secret_file_name(r);
            let host = files::target_path(&secrets, name, false)?;
            mounts.push(read_only_file(&host, format!("{SECRETS_TARGET}/{name}")));
        }
        let configs = self.configs_dir();
        for r in &spec.configs {
            let name = files::config_file_name(r);
            let host = files::target_path(&configs, name, true)?;
            mounts.push(read_only_file(
                &host,
                format!("/{}", name.trim_start_matches('/')),
            ));
        }
        Ok(mounts)
    }

    /// Unmounts the secrets and removes the task's files.
    pub(super) fn remove(&self) -> Result<(), ExecError> {
        files::unmount(&self.secrets_dir())?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ExecError::io(&self.dir)(e)),
        }
    }

    /// True when anything of the task's files is left.
    pub(super) fn exists(&self) -> bool {
        self.dir.exists() || files::is_mount_point(&self.secrets_dir())
    }
}

fn read_only_file(host: &Path, target: String) -> Mount {
    Mount {
        typ: Some(MountType::BIND),
        source: Some(host.to_string_lossy().into_owned()),
        target: Some(target),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The spec's own mounts (bind, volume, tmpfs).
pub(super) fn spec_mounts(spec: &ContainerSpec) -> Result<Vec<Mount>, ExecError> {
    spec.mounts
        .iter()
        .map(|m| {
            if !m.target.starts_with('/') {
                return Err(ExecError::InvalidSpec(format!(
                    "mount target {:?} is not an absolute path",
                    m.target
                )));
            }
            let typ = match m.r#type() {
                SpecMountType::Bind if m.source.starts_with('/') => MountType::BIND,
                SpecMountType::Bind => {
                    return Err(ExecError::InvalidSpec(format!(
                        "bind mount source {:?} is not an absolute path",
                        m.source
                    )));
                }
                SpecMountType::Volume => MountType::VOLUME,
                SpecMountType::Tmpfs if m.source.is_empty() => MountType::TMPFS,
                SpecMountType::Tmpfs => {
                    return Err(ExecError::InvalidSpec(format!(
                        "tmpfs mount at {:?} has a source",
                        m.target
                    )));
                }
            };
            Ok(Mount {
                typ: Some(typ),
                source: (!m.source.is_empty()).then(|| m.source.clone()),
                target: Some(m.target.clone()),
                read_only: Some(m.read_only),
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use swarm_api::v1::{ConfigReference, FileTarget, Mount as SpecMount, SecretReference};

    use super::*;

    fn target(m: &Mount) -> (&str, &str) {
        (
            m.source.as_deref().unwrap_or_default(),
            m.target.as_deref().unwrap_or_default(),
        )
    }

    #[test]
    fn secrets_and_configs_become_read_only_file_mounts() {
        let files = TaskFiles::new(PathBuf::from("/r/t1"));
        let spec = ContainerSpec {
            secrets: vec![
                SecretReference {
                    secret_id: "s1".into(),
                    secret_name: "db-password".into(),
                    file: None,
                },
                SecretReference {
                    secret_id: "s2".into(),
                    secret_name: "x".into(),
                    file: Some(FileTarget {
                        name: "api/key".into(),
                        ..Default::default()
                    }),
                },
            ],
            configs: vec![
                ConfigReference {
                    config_id: "c1".into(),
                    config_name: "app".into(),
                    file: Some(FileTarget {
                        name: "/etc/app.conf".into(),
                        ..Default::default()
                    }),
                },
                ConfigReference {
                    config_id: "c2".into(),
                    config_name: "motd".into(),
                    file: None,
                },
            ],
            ..Default::default()
        };
        let mounts = files.mounts(&spec).unwrap();
        let got: Vec<(&str, &str)> = mounts.iter().map(target).collect();
        assert_eq!(
            got,
            [
                ("/r/t1/run/secrets/db-password", "/run/secrets/db-password"),
                ("/r/t1/run/secrets/api/key", "/run/secrets/api/key"),
                ("/r/t1/configs/etc/app.conf", "/etc/app.conf"),
                ("/r/t1/configs/motd", "/motd"),
            ]
        );
        assert!(mounts.iter().all(|m| m.read_only == Some(true)));
        assert!(mounts.iter().all(|m| m.typ == Some(MountType::BIND)));

        let escape = ContainerSpec {
            secrets: vec![SecretReference {
                secret_id: "s".into(),
                secret_name: "../../etc/shadow".into(),
                file: None,
            }],
            ..Default::default()
        };
        assert!(matches!(
            files.mounts(&escape),
            Err(ExecError::InvalidSpec(_))
        ));
    }

    #[test]
    fn spec_mounts_are_checked() {
        let mount = |t: SpecMountType, source: &str, target: &str| SpecMount {
            r#type: t as i32,
            source: source.into(),
            target: target.into(),
            read_only: true,
        };
        let spec = ContainerSpec {
            mounts: vec![
                mount(SpecMountType::Bind, "/srv/data", "/data"),
                mount(SpecMountType::Volume, "cache", "/cache"),
                mount(SpecMountType::Tmpfs, "", "/scratch"),
            ],
            ..Default::default()
        };
        let got = spec_mounts(&spec).unwrap();
        let kinds: Vec<_> = got.iter().map(|m| m.typ).collect();
        assert_eq!(
            kinds,
            [
                Some(MountType::BIND),
                Some(MountType::VOLUME),
                Some(MountType::TMPFS)
            ]
        );
        assert_eq!(got[2].source, None);
        for bad in [
            mount(SpecMountType::Bind, "relative", "/x"),
            mount(SpecMountType::Volume, "v", "relative"),
            mount(SpecMountType::Tmpfs, "/src", "/x"),
        ] {
            let spec = ContainerSpec {
                mounts: vec![bad.clone()],
                ..Default::default()
            };
            assert!(spec_mounts(&spec).is_err(), "{bad:?}");
        }
    }
}
