//! The `runc` command line: every call passes the executor's own
//! `--root`, so its containers never mix with another runc user's (e.g.
//! Docker's).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::Signal;
use serde::Deserialize;

use crate::exec::{ExecError, ExitStatus};

/// runc's answer to `state`, the parts used here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct State {
    /// `creating`, `created`, `running`, `paused` or `stopped`.
    pub(crate) status: String,
    /// The container's init process (0 once stopped).
    #[serde(default)]
    pub(crate) pid: i32,
}

impl State {
    /// True while the container's process may run.
    pub(crate) fn is_alive(&self) -> bool {
        matches!(
            self.status.as_str(),
            "creating" | "created" | "running" | "paused"
        )
    }
}

/// The runc binary and its state directory.
#[derive(Debug, Clone)]
pub(crate) struct Runc {
    binary: PathBuf,
    root: PathBuf,
}

/// True when runc's message says the container is not there (any more).
fn is_missing(stderr: &str) -> bool {
    stderr.contains("does not exist") || stderr.contains("not running")
}

/// The exit status for `runc run`'s exit: runc exits with the container
/// process's code, `128 + n` when signal `n` killed it (as a shell
/// reports it); such codes (129 to 192) are a death by signal.
pub(crate) fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    match status.code() {
        Some(c @ 129..=192) => ExitStatus::signaled(c - 128),
        _ => ExitStatus::from(status),
    }
}

impl Runc {
    pub(crate) fn new(binary: PathBuf, root: PathBuf) -> Self {
        Runc { binary, root }
    }

    /// The runc binary.
    pub(crate) fn binary(&self) -> &Path {
        &self.binary
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.binary);
        c.arg("--root").arg(&self.root).stdin(Stdio::null());
        c
    }

    async fn output(&self, what: String, args: &[&str]) -> Result<(bool, String), ExecError> {
        let out = self
            .command()
            .args(args)
            .output()
            .await
            .map_err(|source| ExecError::Spawn {
                command: self.binary.display().to_string(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok((true, String::from_utf8_lossy(&out.stdout).into_owned()))
        } else if is_missing(&stderr) {
            Ok((false, stderr))
        } else {
            Err(ExecError::Runtime {
                what,
                reason: stderr.trim().to_string(),
            })
        }
    }

    /// `runc run --bundle <bundle> <id>` in the foreground, ready to spawn
    /// (the caller sets up its output). Its exit is the container's.
    pub(crate) fn run(&self, bundle: &Path, id: &str) -> tokio::process::Command {
        let mut c = self.command();
        c.arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        c
    }

    /// `runc exec <id> <argv>`: a command in the running container with
    /// its process settings (user, environment, capabilities).
    pub(crate) fn exec(&self, id: &str, argv: &[String]) -> tokio::process::Command {
        let mut c = self.command();
        c.arg("exec").arg(id).args(argv);
        c
    }

    /// Sends `signal` to the container's process; `false` when there is
    /// no running container.
    pub(crate) async fn kill(&self, id: &str, signal: Signal) -> Result<bool, ExecError> {
        let sig = signal.as_str().trim_start_matches("SIG");
        let (done, _) = self
            .output(format!("kill {id} {sig}"), &["kill", id, sig])
            .await?;
        Ok(done)
    }

    /// Removes the container, killing it if it runs; succeeds when there
    /// is none.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), ExecError> {
        self.output(format!("delete {id}"), &["delete", "--force", id])
            .await
            .map(|_| ())
    }

    /// The container's state; `None` when runc has no such container.
    pub(crate) async fn state(&self, id: &str) -> Result<Option<State>, ExecError> {
        let (found, text) = self.output(format!("state {id}"), &["state", id]).await?;
        if !found {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ExecError::Runtime {
                what: format!("state {id}"),
                reason: format!("unreadable answer: {e}"),
            })
    }

    /// The first line of `runc --version`.
    pub(crate) async fn version(&self) -> Result<String, ExecError> {
        let (_, text) = self.output("--version".into(), &["--version"]).await?;
        Ok(text.lines().next().unwrap_or_default().trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn states_and_exits() {
        let s: State = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","id":"x","pid":42,"status":"running","bundle":"/b"}"#,
        )
        .unwrap();
        assert_eq!(
            (s.status.as_str(), s.pid, s.is_alive()),
            ("running", 42, true)
        );
        let s: State = serde_json::from_str(r#"{"status":"stopped","pid":0}"#).unwrap();
        assert!(!s.is_alive());
        let code = |c: i32| exit_status(std::process::ExitStatus::from_raw(c << 8));
        assert_eq!(code(0), ExitStatus::code(0));
        assert_eq!(code(3), ExitStatus::code(3));
        assert_eq!(code(137), ExitStatus::signaled(9));
        assert_eq!(
            exit_status(std::process::ExitStatus::from_raw(9)),
            ExitStatus::signaled(9),
            "runc itself killed"
        );
        assert!(is_missing("level=error msg=\"container does not exist\""));
        assert!(!is_missing("permission denied"));
    }
}
