//! Errors of executors and controllers.

use std::path::PathBuf;

/// Why an executor or controller operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The task's spec cannot be run by this executor (no command, a
    /// relative secret path, ...). The task is rejected.
    #[error("invalid task spec: {0}")]
    InvalidSpec(String),
    /// The executor does not support what the spec asks for.
    #[error("not supported by the {executor} executor: {what}")]
    Unsupported {
        /// The executor's name.
        executor: String,
        /// What is not supported.
        what: String,
    },
    /// The user named in the spec does not exist on this node.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The task's process could not be started.
    #[error("start {command:?}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// The error.
        source: std::io::Error,
    },
    /// The task's process exited with a failure.
    #[error("task exited with code {code}{}", signal.map(|s| format!(" (signal {s})")).unwrap_or_default())]
    Exited {
        /// The exit code (128 + signal when killed by a signal).
        code: i32,
        /// The signal that killed it, if any.
        signal: Option<i32>,
    },
    /// The task's health check failed too often.
    #[error("unhealthy: {0}")]
    Unhealthy(String),
    /// A secret or config the task refers to was not assigned to the node.
    #[error("{kind} {id} is not assigned to this node")]
    MissingDependency {
        /// `secret` or `config`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// Secrets need an in-memory filesystem, which only root may mount;
    /// they are never written to disk instead.
    #[error("secrets need a tmpfs mount, which requires root (refusing to write secrets to disk)")]
    SecretsNeedRoot,
    /// The task's image is not on this node and could not be pulled.
    #[error("image {image:?} is not on this node and pulling it failed: {reason}")]
    ImagePull {
        /// The image reference.
        image: String,
        /// Why the pull failed (the engine's message).
        reason: String,
    },
    /// The task's image is not in the executor's local image store.
    #[error("image {image:?} is not in the image store {}", store.display())]
    ImageNotFound {
        /// The image reference.
        image: String,
        /// The store's directory.
        store: PathBuf,
    },
    /// The task's image could not be unpacked into a root filesystem.
    #[error("image {image:?} cannot be unpacked: {reason}")]
    ImageUnpack {
        /// The image reference.
        image: String,
        /// Why not.
        reason: String,
    },
    /// The OCI runtime (runc) refused or failed a request.
    #[error("runc {what}: {reason}")]
    Runtime {
        /// What was asked.
        what: String,
        /// The runtime's answer.
        reason: String,
    },
    /// The container engine refused or failed a request.
    #[error("container engine: {what}: {reason}")]
    Engine {
        /// What was asked.
        what: String,
        /// The engine's answer.
        reason: String,
    },
    /// A method was called out of order (e.g. wait before start).
    #[error("{0}")]
    State(&'static str),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The task's network attachment (namespace, endpoints, DNS, VIPs)
    /// could not be made.
    #[error("network attachment: {0}")]
    Network(String),
    /// The static program a network sandbox container runs (the host's
    /// busybox) is missing.
    #[error(
        "network sandbox: {} is missing (install Debian busybox-static, or give the executor another static busybox)",
        path.display()
    )]
    SandboxBinary {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was attempted.
        what: String,
        /// The error.
        source: nix::Error,
    },
}

impl ExecError {
    /// An [`ExecError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExecError {
        let path = path.into();
        move |source| ExecError::Io { path, source }
    }

    /// An [`ExecError::Sys`] for `what`.
    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ExecError {
        let what = what.into();
        move |source| ExecError::Sys { what, source }
    }

    /// The exit code this error carries, if it is an exit.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ExecError::Exited { code, .. } => Some(*code),
            _ => None,
        }
    }
}
