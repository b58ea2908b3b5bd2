//! Secrets and configs as files of a task, shared by the executors.
//!
//! Secrets go to `<task dir>/run/secrets/<name>` on a tmpfs mounted for
//! the task (never on disk: without root, which mounting needs, preparing
//! a task with secrets fails with [`ExecError::SecretsNeedRoot`]). Configs
//! are not confidential and go to `<task dir>/configs/<name>` (an
//! absolute config target `/etc/app.conf` becomes
//! `<task dir>/configs/etc/app.conf`). Both are removed with the task.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use swarm_api::v1::{ConfigReference, FileTarget, SecretReference};

use crate::exec::{Dependencies, ExecError};

/// Default mode of secret and config files.
const DEFAULT_MODE: u32 = 0o444;

/// The file name of a secret: its target's name, else the secret's name.
pub(crate) fn secret_file_name(r: &SecretReference) -> &str {
    r.file
        .as_ref()
        .map(|f| f.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or(r.secret_name.as_str())
}

/// The file name of a config: its target's name (may be absolute), else
/// the config's name.
pub(crate) fn config_file_name(r: &ConfigReference) -> &str {
    r.file
        .as_ref()
        .map(|f| f.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or(r.config_name.as_str())
}

/// A relative path under a base directory, refusing `..` and (for
/// secrets) absolute names.
pub(crate) fn target_path(
    base: &Path,
    name: &str,
    allow_absolute: bool,
) -> Result<PathBuf, ExecError> {
    let rel = if allow_absolute {
        name.trim_start_matches('/')
    } else {
        name
    };
    let bad = || {
        ExecError::InvalidSpec(format!(
            "file target {name:?} must be a relative path without `..`"
        ))
    };
    if rel.is_empty() {
        return Err(bad());
    }
    let p = Path::new(rel);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad());
    }
    Ok(base.join(p))
}

fn write_file(path: &Path, data: &[u8], target: Option<&FileTarget>) -> Result<(), ExecError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(ExecError::io(parent))?;
    }
    fs::write(path, data).map_err(ExecError::io(path))?;
    let mode = target
        .map(|t| t.mode)
        .filter(|m| *m != 0)
        .unwrap_or(DEFAULT_MODE);
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(ExecError::io(path))?;
    let parse = |s: &str, what: &str| -> Result<Option<u32>, ExecError> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|_| ExecError::InvalidSpec(format!("file {what} {s:?} is not a number")))
    };
    let uid = parse(target.map_or("", |t| t.uid.as_str()), "uid")?;
    let gid = parse(target.map_or("", |t| t.gid.as_str()), "gid")?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid).map_err(ExecError::io(path))?;
    }
    Ok(())
}

/// True when `dir` is a mount point (on another device than its parent).
pub(crate) fn is_mount_point(dir: &Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (fs::metadata(dir), dir.parent().map(fs::metadata)) else {
        return false;
    };
    me.dev() != parent.dev()
}

/// Writes the task's secrets under `dir` (a fresh tmpfs).
pub(crate) fn write_secrets(
    dir: &Path,
    refs: &[SecretReference],
    deps: &Dependencies,
) -> Result<(), ExecError> {
    if refs.is_empty() {
        return Ok(());
    }
    // Resolve everything before touching the filesystem.
    let mut files = Vec::with_capacity(refs.len());
    let mut total = 0usize;
    for r in refs {
        let secret = deps.secret(&r.secret_id)?;
        let data = secret
            .spec
            .as_ref()
            .map(|s| s.data.as_slice())
            .unwrap_or_default();
        let name = secret_file_name(r);
        total += data.len() + 4096;
        files.push((target_path(dir, name, false)?, data, r.file.as_ref()));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(ExecError::SecretsNeedRoot);
    }
    fs::create_dir_all(dir).map_err(ExecError::io(dir))?;
    if !is_mount_point(dir) {
        let size = 64 * 1024 + total;
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=0755,size={size}").as_str()),
        )
        .map_err(ExecError::sys(format!("mount tmpfs on {}", dir.display())))?;
    }
    for (path, data, target) in files {
        write_file(&path, data, target)?;
    }
    Ok(())
}

/// Writes the task's configs under `dir`.
pub(crate) fn write_configs(
    dir: &Path,
    refs: &[ConfigReference],
    deps: &Dependencies,
) -> Result<(), ExecError> {
    for r in refs {
        let config = deps.config(&r.config_id)?;
        let data = config
            .spec
            .as_ref()
            .map(|s| s.data.as_slice())
            .unwrap_or_default();
        let name = config_file_name(r);
        write_file(&target_path(dir, name, true)?, data, r.file.as_ref())?;
    }
    Ok(())
}

/// Unmounts `dir` if it is a mount point.
pub(crate) fn unmount(dir: &Path) -> Result<(), ExecError> {
    if is_mount_point(dir) {
        umount2(dir, MntFlags::MNT_DETACH)
            .map_err(ExecError::sys(format!("unmount {}", dir.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_stay_inside_their_directory() {
        let base = Path::new("/t");
        let table = [
            ("pw", false, Some("/t/pw")),
            ("a/b", false, Some("/t/a/b")),
            ("/etc/x", false, None),
            ("/etc/x", true, Some("/t/etc/x")),
            ("../x", true, None),
            ("a/../../x", false, None),
            ("", false, None),
            ("/", true, None),
        ];
        for (name, abs, want) in table {
            let got = target_path(base, name, abs).ok();
            assert_eq!(got.as_deref(), want.map(Path::new), "{name:?}");
        }
    }
}
