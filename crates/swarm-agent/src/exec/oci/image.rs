//! The image store: root filesystems by image name, in a directory.
//!
//! ```text
//! <store>/<name>/rootfs/      an image's root filesystem
//! <store>/<name>.tar          or a tarball of one (also .tar.gz, .tgz),
//!                             unpacked (with `tar`) once into <name>/rootfs
//! ```
//!
//! An image reference `name` or `name:latest` is the directory `name`;
//! `name:tag` is `name@tag` (overlay mounts cannot take a `:` in a path). No registry is involved: images are put in
//! the store by the operator (e.g. [`busybox_rootfs`]).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::exec::ExecError;

/// Name of an image's root filesystem directory.
pub const ROOTFS_DIR: &str = "rootfs";

/// Tarball endings looked for, in order.
const TARBALLS: [&str; 3] = [".tar", ".tar.gz", ".tgz"];

/// Root filesystems by image name. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    /// The store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ImageStore { dir: dir.into() }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store's entry name for an image reference; refuses names that
    /// are not plain file names.
    pub fn entry_name(image: &str) -> Result<String, ExecError> {
        let image = image.trim();
        let name = image.strip_suffix(":latest").unwrap_or(image);
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
        if ok {
            Ok(name.replace(':', "@"))
        } else {
            Err(ExecError::InvalidSpec(format!(
                "image {image:?} is not a name of the local image store ([A-Za-z0-9._-] with an optional :tag)"
            )))
        }
    }

    /// Where the root filesystem of `image` is (or goes).
    pub fn rootfs_path(&self, image: &str) -> Result<PathBuf, ExecError> {
        Ok(self.dir.join(Self::entry_name(image)?).join(ROOTFS_DIR))
    }

    /// The root filesystem of `image`, unpacking its tarball first if
    /// only that is in the store. [`ExecError::ImageNotFound`] when the
    /// store has neither.
    pub async fn resolve(&self, image: &str) -> Result<PathBuf, ExecError> {
        let name = Self::entry_name(image)?;
        let rootfs = self.dir.join(&name).join(ROOTFS_DIR);
        if rootfs.is_dir() {
            return Ok(rootfs);
        }
        for ending in TARBALLS {
            let tarball = self.dir.join(format!("{name}{ending}"));
            if tarball.is_file() {
                self.unpack(image, &tarball, &rootfs).await?;
                return Ok(rootfs);
            }
        }
        Err(ExecError::ImageNotFound {
            image: image.to_string(),
            store: self.dir.clone(),
        })
    }

    /// Unpacks `tarball` into a scratch directory, then renames it to
    /// `rootfs`: a concurrent or interrupted unpack never leaves half a
    /// root filesystem in place.
    async fn unpack(&self, image: &str, tarball: &Path, rootfs: &Path) -> Result<(), ExecError> {
        let parent = rootfs
            .parent()
            .ok_or(ExecError::State("an image root filesystem has no parent"))?;
        fs::create_dir_all(parent).map_err(ExecError::io(parent))?;
        let scratch = parent.join(format!(
            ".unpack-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::create_dir_all(&scratch).map_err(ExecError::io(&scratch))?;
        let failed = |reason: String| ExecError::ImageUnpack {
            image: image.to_string(),
            reason,
        };
        let out = tokio::process::Command::new("tar")
            .arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(&scratch)
            .arg("--numeric-owner")
            .output()
            .await
            .map_err(|source| ExecError::Spawn {
                command: "tar".into(),
                source,
            })?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&scratch);
            return Err(failed(format!(
                "tar -xf {}: {}",
                tarball.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        fs::set_permissions(&scratch, fs::Permissions::from_mode(0o755))
            .map_err(ExecError::io(&scratch))?;
        match fs::rename(&scratch, rootfs) {
            Ok(()) => Ok(()),
            // Another task unpacked it first.
            Err(_) if rootfs.is_dir() => {
                let _ = fs::remove_dir_all(&scratch);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&scratch);
                Err(ExecError::io(rootfs)(e))
            }
        }
    }
}

/// Makes a busybox root filesystem in `rootfs` from the static binary
/// `busybox` (Debian's `busybox-static` installs `/bin/busybox`): the
/// binary, a symbolic link per applet (as `busybox --install -s` makes
/// them, from `busybox --list-full`), `/etc/passwd` and `/etc/group` with
/// `root` and `nobody`, and the usual empty directories. Does nothing when
/// `rootfs/bin/busybox` exists.
pub fn busybox_rootfs(rootfs: &Path, busybox: &Path) -> Result<(), ExecError> {
    if rootfs.join("bin/busybox").is_file() {
        return Ok(());
    }
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|source| ExecError::Spawn {
            command: busybox.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(ExecError::ImageUnpack {
            image: "busybox".into(),
            reason: format!("{} --list-full failed", busybox.display()),
        });
    }
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(ExecError::io(parent))?;
    let scratch = parent.join(format!(
        ".busybox-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    for (dir, mode) in [
        ("", 0o755),
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("home", 0o755),
        ("proc", 0o755),
        ("sys", 0o755),
        ("dev", 0o755),
        ("run", 0o755),
        ("var", 0o755),
        ("tmp", 0o1777),
    ] {
        let d = scratch.join(dir);
        fs::create_dir_all(&d).map_err(ExecError::io(&d))?;
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).map_err(ExecError::io(&d))?;
    }
    let bin = scratch.join("bin/busybox");
    fs::copy(busybox, &bin).map_err(ExecError::io(&bin))?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).map_err(ExecError::io(&bin))?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        let path = Path::new(applet);
        let ok = !applet.is_empty()
            && path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !ok || applet == "bin/busybox" {
            continue;
        }
        let link = scratch.join(path);
        if let Some(dir) = link.parent() {
            fs::create_dir_all(dir).map_err(ExecError::io(dir))?;
        }
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("/bin/busybox", &link).map_err(ExecError::io(&link))?;
        }
    }
    for (file, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        let p = scratch.join(file);
        fs::write(&p, text).map_err(ExecError::io(&p))?;
    }
    match fs::rename(&scratch, rootfs) {
        Ok(()) => Ok(()),
        Err(_) if rootfs.join("bin/busybox").is_file() => {
            let _ = fs::remove_dir_all(&scratch);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&scratch);
            Err(ExecError::io(rootfs)(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "swarm-oci-images-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_map_to_entries() {
        let table = [
            ("busybox", Some("busybox")),
            ("busybox:latest", Some("busybox")),
            ("busybox:1.36", Some("busybox@1.36")),
            ("my_app-2", Some("my_app-2")),
            ("", None),
            ("../etc", None),
            ("library/busybox", None),
            (".hidden", None),
        ];
        for (image, want) in table {
            assert_eq!(
                ImageStore::entry_name(image).ok().as_deref(),
                want,
                "{image:?}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_images_and_broken_tarballs_are_typed_errors() {
        let dir = scratch("errors");
        let store = ImageStore::new(&dir);
        match store.resolve("nope").await {
            Err(ExecError::ImageNotFound { image, store }) => {
                assert_eq!((image.as_str(), store), ("nope", dir.clone()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.resolve("../x").await,
            Err(ExecError::InvalidSpec(_))
        ));
        fs::write(dir.join("broken.tar"), b"not a tarball").unwrap();
        assert!(matches!(
            store.resolve("broken").await,
            Err(ExecError::ImageUnpack { .. })
        ));
        assert!(!dir.join("broken/rootfs").exists(), "nothing half-unpacked");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn tarballs_are_unpacked_once() {
        let dir = scratch("tar");
        let src = dir.join("src");
        fs::create_dir_all(src.join("etc")).unwrap();
        fs::write(src.join("etc/motd"), "hello").unwrap();
        let ok = std::process::Command::new("tar")
            .arg("-czf")
            .arg(dir.join("app.tar.gz"))
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(ok.success());
        let store = ImageStore::new(&dir);
        let rootfs = store.resolve("app:latest").await.unwrap();
        assert_eq!(rootfs, dir.join("app/rootfs"));
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/motd")).unwrap(),
            "hello"
        );
        // Cached: the tarball is not read again.
        fs::remove_file(dir.join("app.tar.gz")).unwrap();
        assert_eq!(store.resolve("app").await.unwrap(), rootfs);
        fs::remove_dir_all(&dir).unwrap();
    }
}
