//! The command line that runs a task's program inside its network
//! namespace, the way a container would see it:
//!
//! ```text
//! nsenter --net=<ns> -- unshare --mount -- sh -c <bind resolv.conf; exec> \
//!     [setpriv --reuid U --regid G --init-groups|--clear-groups --] program args…
//! ```
//!
//! - `nsenter` joins the task's network namespace;
//! - `unshare --mount` gives the process a private mount namespace (mount
//!   propagation private, util-linux's default), so the bind mount below
//!   is seen by the task only;
//! - `sh` bind-mounts the task's `resolv.conf` (the embedded DNS at
//!   127.0.0.11) over `/etc/resolv.conf`, then execs the rest;
//! - `setpriv` drops to the spec's `user` last: the steps before need root
//!   (entering a namespace, mounting), which is why the user cannot be set
//!   on the spawned process itself.
//!
//! Every step `exec`s the next, so the process the agent spawned (its pid
//! and process group) ends up being the task's program. The tools are
//! looked up in the standard directories, not through the task's `PATH`
//! (which the spec may set), and named by absolute path.

use std::path::{Path, PathBuf};

use super::user::ResolvedUser;
use crate::exec::ExecError;

/// Directories searched for the tools (the standard `PATH`).
const TOOL_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The shell step: `$1` is `mount`, `$2` the task's resolv.conf; the rest
/// is the command to exec. A node without `/etc/resolv.conf` has nothing
/// to cover: the task then has none either, as on the host.
const BIND_AND_EXEC: &str = "if [ -e /etc/resolv.conf ]; then \
     \"$1\" --bind \"$2\" /etc/resolv.conf || { echo \"swarm: cannot bind $2 over /etc/resolv.conf\" >&2; exit 126; }; \
     fi; shift 2; exec \"$@\"";

/// Finds `tool` in the standard directories.
fn tool(name: &str) -> Result<PathBuf, ExecError> {
    TOOL_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ExecError::InvalidSpec(format!(
                "running a task in a network namespace needs `{name}` (util-linux), not found in {}",
                TOOL_DIRS.join(":")
            ))
        })
}

/// The argv (program first) running `argv` in the namespace at `netns`
/// with `resolv_conf` as its `/etc/resolv.conf`, as `user` when set.
pub(super) fn wrap(
    netns: &Path,
    resolv_conf: &Path,
    user: Option<&ResolvedUser>,
    argv: &[String],
) -> Result<Vec<String>, ExecError> {
    let text = |p: PathBuf| p.to_string_lossy().into_owned();
    let mut out = vec![
        text(tool("nsenter")?),
        format!("--net={}", netns.display()),
        "--".into(),
        text(tool("unshare")?),
        "--mount".into(),
        "--".into(),
        text(tool("sh")?),
        "-c".into(),
        BIND_AND_EXEC.into(),
        "swarm-netns".into(),
        text(tool("mount")?),
        resolv_conf.to_string_lossy().into_owned(),
    ];
    if let Some(u) = user {
        out.push(text(tool("setpriv")?));
        out.push(format!("--reuid={}", u.uid));
        out.push(format!("--regid={}", u.gid));
        // Supplementary groups from the group database when the user has
        // an entry (as Docker does), none for a bare uid.
        out.push(if u.home.is_some() {
            "--init-groups".into()
        } else {
            "--clear-groups".into()
        });
        out.push("--".into());
    }
    out.extend(argv.iter().cloned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(user: Option<&ResolvedUser>) -> Vec<String> {
        wrap(
            Path::new("/run/netns/t1"),
            Path::new("/var/lib/t1/resolv.conf"),
            user,
            &["prog".to_string(), "a b".to_string()],
        )
        .unwrap()
    }

    #[test]
    fn the_program_comes_last_with_its_arguments_intact() {
        let argv = args(None);
        assert!(argv[0].ends_with("/nsenter"), "{argv:?}");
        assert_eq!(argv[1], "--net=/run/netns/t1");
        assert!(argv.iter().any(|a| a.ends_with("/unshare")));
        assert!(argv.contains(&"/var/lib/t1/resolv.conf".to_string()));
        assert!(!argv.iter().any(|a| a.ends_with("/setpriv")));
        assert_eq!(&argv[argv.len() - 2..], ["prog", "a b"]);
    }

    #[test]
    fn a_user_is_set_last_before_the_program() {
        let named = ResolvedUser {
            uid: 65534,
            gid: 65534,
            home: Some("/nonexistent".into()),
        };
        let argv = args(Some(&named));
        let at = argv.iter().position(|a| a.ends_with("/setpriv")).unwrap();
        assert_eq!(
            &argv[at + 1..],
            [
                "--reuid=65534",
                "--regid=65534",
                "--init-groups",
                "--",
                "prog",
                "a b"
            ]
        );
        let bare = ResolvedUser {
            uid: 4242,
            gid: 4243,
            home: None,
        };
        assert!(args(Some(&bare)).contains(&"--clear-groups".to_string()));
    }

    /// The shell step really binds and execs: run it without namespaces
    /// (an identity `mount`), checking the arguments reach the program.
    #[test]
    fn the_shell_step_passes_the_command_through() {
        let out = std::process::Command::new("sh")
            .args(["-c", BIND_AND_EXEC, "swarm-netns", "true", "/x"])
            .args(["printf", "%s|", "a b", "c"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|c|");
        let fail = std::process::Command::new("sh")
            .args(["-c", BIND_AND_EXEC, "swarm-netns", "false", "/x", "true"])
            .output()
            .unwrap();
        if std::path::Path::new("/etc/resolv.conf").exists() {
            assert_eq!(fail.status.code(), Some(126), "a failed bind stops");
        }
    }
}
