//! A task's OCI bundle on disk: the root filesystem as an overlay of the
//! image (read-only lower layer) and a writable layer of the task's own,
//! the files the agent bind-mounts into the container, and `config.json`.
//!
//! ```text
//! <dir>/config.json
//! <dir>/rootfs          overlay mount: lower = image, upper/work below
//! <dir>/upper  <dir>/work
//! <dir>/etc/{resolv.conf,hosts,hostname}
//! <dir>/run/secrets     tmpfs (see crate::exec::files)
//! <dir>/configs
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use swarm_api::v1::ContainerSpec;

use super::config::Spec;
use crate::exec::{Dependencies, ExecError, files};
use crate::network::RESOLV_CONF;

/// Where secrets appear inside a container.
pub const SECRETS_TARGET: &str = "/run/secrets";

/// One task's bundle directory.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Bundle { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    fn secrets_dir(&self) -> PathBuf {
        self.dir.join("run").join("secrets")
    }

    fn configs_dir(&self) -> PathBuf {
        self.dir.join("configs")
    }

    fn etc_dir(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// Mounts the task's root filesystem: an overlay of `image` (never
    /// written to) and the task's writable layer. Idempotent.
    pub(crate) fn mount_rootfs(&self, image: &Path) -> Result<(), ExecError> {
        let rootfs = self.rootfs();
        let upper = self.dir.join("upper");
        let work = self.dir.join("work");
        for d in [&rootfs, &upper, &work] {
            fs::create_dir_all(d).map_err(ExecError::io(d))?;
        }
        if files::is_mount_point(&rootfs) {
            return Ok(());
        }
        let paths = [image, upper.as_path(), work.as_path()];
        // The legacy mount API splits options at commas and lowerdir at
        // colons: such paths cannot be given.
        if let Some(bad) = paths.iter().find(|p| {
            let s = p.to_string_lossy();
            s.contains(',') || s.contains(':')
        }) {
            return Err(ExecError::InvalidSpec(format!(
                "path {} has a ',' or ':', which overlay mounts cannot take",
                bad.display()
            )));
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            image.display(),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(ExecError::sys(format!(
            "mount the overlay root filesystem on {}",
            rootfs.display()
        )))
    }

    /// Writes the files bind-mounted into the container and returns the
    /// mounts as `(host file, container path)`: `/etc/resolv.conf` (the
    /// embedded DNS when the task is on overlay networks, else a copy of
    /// the host's), `/etc/hosts`, `/etc/hostname`, the secrets (on a
    /// tmpfs) at `/run/secrets/<name>` and the configs at their targets.
    pub(crate) fn write_files(
        &self,
        spec: &ContainerSpec,
        deps: &Dependencies,
        hostname: &str,
        overlay_address: Option<Option<&str>>,
    ) -> Result<Vec<(PathBuf, String)>, ExecError> {
        let etc = self.etc_dir();
        fs::create_dir_all(&etc).map_err(ExecError::io(&etc))?;
        let resolv = match overlay_address {
            Some(_) => RESOLV_CONF.to_string(),
            None => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        };
        let address = overlay_address.flatten().unwrap_or("127.0.1.1");
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{address}\t{hostname}\n"
        );
        let mut mounts = Vec::new();
        for (name, text) in [
            ("resolv.conf", resolv),
            ("hosts", hosts),
            ("hostname", format!("{hostname}\n")),
        ] {
            let p = etc.join(name);
            fs::write(&p, text).map_err(ExecError::io(&p))?;
            mounts.push((p, format!("/etc/{name}")));
        }
        files::write_configs(&self.configs_dir(), &spec.configs, deps)?;
        files::write_secrets(&self.secrets_dir(), &spec.secrets, deps)?;
        let secrets = self.secrets_dir();
        for r in &spec.secrets {
            let name = files::secret_file_name(r);
            let host = files::target_path(&secrets, name, false)?;
            mounts.push((host, format!("{SECRETS_TARGET}/{name}")));
        }
        let configs = self.configs_dir();
        for r in &spec.configs {
            let name = files::config_file_name(r);
            let host = files::target_path(&configs, name, true)?;
            mounts.push((host, format!("/{}", name.trim_start_matches('/'))));
        }
        Ok(mounts)
    }

    /// Writes `config.json`.
    pub(crate) fn write_config(&self, spec: &Spec) -> Result<(), ExecError> {
        let path = self.dir.join("config.json");
        let json = serde_json::to_vec_pretty(spec).map_err(|e| ExecError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        fs::write(&path, json).map_err(ExecError::io(&path))
    }

    /// Unmounts the root filesystem and the secrets, then removes the
    /// directory.
    pub(crate) fn remove(&self) -> Result<(), ExecError> {
        files::unmount(&self.rootfs())?;
        files::unmount(&self.secrets_dir())?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ExecError::io(&self.dir)(e)),
        }
    }
}
