//! Network namespaces: create, open, enter for one call, remove.
//!
//! A namespace is named by a file that holds a bind mount of a namespace
//! (`/run/netns/<name>`, like `ip netns add`). Work inside a namespace runs
//! on a fresh thread that joins it and ends afterwards, so no thread of the
//! caller's (a tokio worker, say) ever changes namespace: netlink sockets
//! and child processes made on that thread stay bound to the namespace.
//! Everything here goes through `nix` and is safe code.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Where `ip netns` keeps named namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";

/// A namespace failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// A namespace of that name already exists.
    #[error("network namespace {0} already exists")]
    Exists(PathBuf),
    /// A namespace file could not be opened or is not a namespace.
    #[error("network namespace {path}: {source}")]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Creating, entering or removing failed.
    #[error("{op} network namespace {path}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The namespace.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// An open network namespace: the file it is named by (if any) and a file
/// descriptor that keeps it alive while held.
#[derive(Debug)]
pub struct Netns {
    path: PathBuf,
    fd: OwnedFd,
}

impl Netns {
    /// Opens the namespace at `path` (a `/run/netns/<name>` file or a
    /// `/proc/<pid>/ns/net` link).
    pub fn open(path: impl AsRef<Path>) -> Result<Netns, NetnsError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Netns {
            path,
            fd: file.into(),
        })
    }

    /// Wraps a namespace file descriptor someone else opened.
    pub fn from_fd(fd: OwnedFd) -> Netns {
        Netns {
            path: PathBuf::from("<fd>"),
            fd,
        }
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Netns, NetnsError> {
        Netns::open("/proc/thread-self/ns/net")
    }

    /// Creates a new, empty namespace named `dir/name` (`ip netns add`).
    /// Fails with [`NetnsError::Exists`] when the name is taken; leaves
    /// nothing behind on failure.
    pub fn create(dir: impl AsRef<Path>, name: &str) -> Result<Netns, NetnsError> {
        Netns::name_with(dir.as_ref(), name, "creating", |target| {
            std::thread::spawn(move || -> io::Result<()> {
                unshare(CloneFlags::CLONE_NEWNET)?;
                bind(Path::new("/proc/thread-self/ns/net"), &target)
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
        })
    }

    /// Names an existing namespace `dir/name` (`ip netns attach NAME PID`):
    /// `source` is a namespace file, e.g. `/proc/<pid>/ns/net` of a
    /// process already in it (a container's). The name then keeps the
    /// namespace alive like one made by [`Netns::create`], and
    /// [`remove_named`] removes it the same way. Fails with
    /// [`NetnsError::Exists`] when the name is taken, with
    /// [`NetnsError::Open`] or [`NetnsError::Sys`] when `source` is not a
    /// network namespace; leaves nothing behind on failure.
    pub fn attach(dir: impl AsRef<Path>, name: &str, source: &Path) -> Result<Netns, NetnsError> {
        // Checked before the name is taken (`setns` refuses a file that is
        // no network namespace), and bound from the descriptor checked, so
        // that a pid reused meanwhile cannot swap the namespace.
        let src = Netns::open(source)?;
        src.run(|| ())?;
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", src.fd.as_raw_fd()));
        Netns::name_with(dir.as_ref(), name, "attaching", move |target| {
            bind(&by_fd, &target)
        })
    }

    /// Takes the name `dir/name` (a new empty file), lets `mount` bind a
    /// namespace onto it, and opens it; removes the name on failure.
    fn name_with(
        dir: &Path,
        name: &str,
        op: &'static str,
        mount: impl FnOnce(PathBuf) -> io::Result<()>,
    ) -> Result<Netns, NetnsError> {
        let path = dir.join(name);
        let sys = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| NetnsError::Sys { op, path, source }
        };
        std::fs::create_dir_all(dir).map_err(sys("creating the directory of", &path))?;
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(NetnsError::Exists(path));
            }
            Err(e) => return Err(sys("creating the file of", &path)(e)),
        }
        if let Err(e) = mount(path.clone()) {
            let _ = std::fs::remove_file(&path);
            return Err(sys(op, &path)(e));
        }
        match Netns::open(&path) {
            Ok(ns) => Ok(ns),
            Err(e) => {
                let _ = remove_named(&path);
                Err(e)
            }
        }
    }

    /// The path the namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name: the last component of the path.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A second descriptor for the same namespace.
    pub fn try_clone(&self) -> Result<Netns, NetnsError> {
        let fd = self.fd.try_clone().map_err(|source| NetnsError::Open {
            path: self.path.clone(),
            source,
        })?;
        Ok(Netns {
            path: self.path.clone(),
            fd,
        })
    }

    /// Identity of the namespace (device and inode of its nsfs file): two
    /// handles with the same identity are the same namespace.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        let file = File::from(self.fd.try_clone()?);
        let meta = file.metadata()?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Runs `f` on a fresh thread inside this namespace and waits for it.
    /// Sockets `f` opens stay in the namespace; so do processes it spawns.
    pub fn run<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let fd = self.try_clone()?;
        std::thread::spawn(move || -> io::Result<T> {
            setns(fd.fd.as_fd(), CloneFlags::CLONE_NEWNET)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
        .map_err(|source| NetnsError::Sys {
            op: "entering",
            path: self.path.clone(),
            source,
        })
    }

    /// Like [`Netns::run`], without blocking the async caller's thread.
    pub async fn run_async<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let fd = self.try_clone()?;
        let path = self.path.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let r = setns(fd.fd.as_fd(), CloneFlags::CLONE_NEWNET).map(|()| f());
            let _ = tx.send(r);
        });
        let enter = |source| NetnsError::Sys {
            op: "entering",
            path: path.clone(),
            source,
        };
        match rx.await {
            Ok(r) => r.map_err(|e| enter(e.into())),
            Err(_) => Err(enter(io::Error::other("namespace thread panicked"))),
        }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Bind-mounts the namespace file `source` onto `target`.
fn bind(source: &Path, target: &Path) -> io::Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    Ok(())
}

/// Removes a named namespace (`ip netns delete`): detaches its bind mount
/// and deletes the file. The namespace itself lives on while a process or
/// descriptor still holds it. Removing a name that does not exist is not an
/// error.
pub fn remove_named(path: impl AsRef<Path>) -> Result<(), NetnsError> {
    let path = path.as_ref();
    if !path.exists() {
        return Ok(());
    }
    // EINVAL: not a mount point (a half-created name); remove the file anyway.
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(NetnsError::Sys {
                op: "unmounting",
                path: path.to_path_buf(),
                source: e.into(),
            });
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Sys {
            op: "removing",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A named namespace removed when dropped: for tests and benches that must
/// leave nothing behind even when they fail.
#[derive(Debug)]
pub struct NetnsGuard {
    ns: Netns,
}

impl NetnsGuard {
    /// Creates `dir/name`.
    pub fn create(dir: impl AsRef<Path>, name: &str) -> Result<NetnsGuard, NetnsError> {
        Ok(NetnsGuard {
            ns: Netns::create(dir, name)?,
        })
    }

    /// Creates a namespace in [`DEFAULT_NETNS_DIR`] named
    /// `<prefix>-<pid>-<counter>`, unique in this process and across
    /// processes running at once.
    pub fn unique(prefix: &str) -> Result<NetnsGuard, NetnsError> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        NetnsGuard::create(DEFAULT_NETNS_DIR, &name)
    }

    /// The namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.ns.path()
    }

    /// Its name.
    pub fn name(&self) -> String {
        self.ns.name()
    }
}

impl std::ops::Deref for NetnsGuard {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.ns
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = remove_named(self.ns.path()) {
            tracing::warn!(
                "leaving network namespace {}: {e}",
                self.ns.path().display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// A second name for a namespace (as `ip netns attach` makes) is the
    /// same namespace, outlives the first name and is removed alike; a
    /// file that is no namespace is refused and leaves no name.
    #[test]
    fn attach_names_an_existing_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP attach_names_an_existing_namespace: needs root (mount, unshare)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("swov-netns-{}", std::process::id()));
        let first = Netns::create(&dir, "first").unwrap();
        let second = Netns::attach(&dir, "second", first.path()).unwrap();
        assert_eq!(first.identity().unwrap(), second.identity().unwrap());
        assert!(matches!(
            Netns::attach(&dir, "second", first.path()),
            Err(NetnsError::Exists(_))
        ));
        drop(first);
        remove_named(dir.join("first")).unwrap();
        let again = Netns::open(dir.join("second")).unwrap();
        assert_eq!(again.identity().unwrap(), second.identity().unwrap());
        remove_named(dir.join("second")).unwrap();
        assert!(!dir.join("second").exists());

        let not_ns = dir.join("plain");
        std::fs::write(&not_ns, b"x").unwrap();
        assert!(matches!(
            Netns::attach(&dir, "third", &not_ns),
            Err(NetnsError::Sys { op: "entering", .. })
        ));
        assert!(!dir.join("third").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
