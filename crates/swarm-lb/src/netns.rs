//! Network namespaces: where a dataplane or a resolver does its work.
//!
//! Namespaces are per thread in Linux. [`NetNs::run`] runs a closure on a
//! short-lived thread that has entered the namespace, so the caller's
//! threads (and the async runtime's) never change namespace. Sockets keep
//! the namespace they were created in: a socket made inside [`NetNs::run`]
//! can be used from any thread afterwards, and a process spawned there
//! (e.g. `nft`) runs in that namespace.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use crate::error::{LbError, Result};

/// A network namespace: the caller's own, or one named by a path such as
/// `/run/netns/<name>` or `/proc/<pid>/ns/net`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetNs {
    /// The namespace of the calling thread.
    Current,
    /// The namespace bound at this path.
    Path(PathBuf),
}

impl NetNs {
    /// A namespace made by `ip netns add <name>`.
    pub fn named(name: &str) -> Self {
        NetNs::Path(Path::new("/run/netns").join(name))
    }

    /// Starts a named, long-lived thread that enters the namespace, then
    /// runs `f`. Fails if the namespace cannot be entered.
    pub fn spawn(&self, name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
        let file = match self {
            NetNs::Current => None,
            NetNs::Path(p) => Some(
                File::open(p)
                    .map_err(|e| LbError::io(format!("opening namespace {}", p.display()), e))?,
            ),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if let Some(file) = file
                    && let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET)
                {
                    let _ = tx.send(Err(LbError::io(
                        "entering namespace",
                        std::io::Error::from(e),
                    )));
                    return;
                }
                let _ = tx.send(Ok(()));
                f();
            })
            .map_err(|e| LbError::io("spawning a thread", e))?;
        rx.recv().unwrap_or_else(|_| {
            Err(LbError::io(
                "namespace thread",
                std::io::Error::other("exited early"),
            ))
        })
    }

    /// Runs `f` inside the namespace and returns its result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = match self {
            NetNs::Current => return Ok(f()),
            NetNs::Path(p) => p,
        };
        let file = File::open(path)
            .map_err(|e| LbError::io(format!("opening namespace {}", path.display()), e))?;
        std::thread::scope(|scope| {
            let handle = scope.spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    LbError::io(
                        format!("entering namespace {}", path.display()),
                        std::io::Error::from(e),
                    )
                })?;
                Ok(f())
            });
            handle.join().unwrap_or_else(|_| {
                Err(LbError::io(
                    "namespace thread",
                    std::io::Error::other("panicked"),
                ))
            })
        })
    }
}
