//! A real `swarmd` process on a loopback address, and a way to run
//! `swarmctl` against it.

#![allow(dead_code, unreachable_pub, reason = "helpers shared by test files")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `swarmd init`, killed (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    verb: String,
    child: Option<Child>,
    /// The state directory (removed on drop).
    pub dir: PathBuf,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its manager address.
    pub addr: String,
}

fn free_port(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap().port()
}

impl Daemon {
    /// Starts `swarmd init` on `ip` with a fresh state directory and waits
    /// until `swarmctl node ls` answers.
    pub fn init(ip: &str, name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("swarmd-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addr = format!("{ip}:{}", free_port(ip));
        Daemon::start("init", dir, addr)
    }

    /// Restarts a stopped daemon from its state directory (`swarmd run`).
    pub fn restart(mut self) -> Daemon {
        let dir = std::mem::take(&mut self.dir);
        let addr = self.addr.clone();
        // Child already stopped and dir taken: dropping self cleans nothing.
        drop(self);
        Daemon::start("run", dir, addr)
    }

    fn start(verb: &str, dir: PathBuf, addr: String) -> Daemon {
        let socket = dir.join("state").join("control.sock");
        let log = std::fs::File::create(dir.join(format!("swarmd-{verb}.log"))).unwrap();
        let out = std::fs::File::create(dir.join(format!("swarmd-{verb}.out"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_swarmd"))
            .args([verb, "--state-dir"])
            .arg(dir.join("state"))
            .args([
                "--listen-addr",
                &addr,
                "--raft-tick",
                "50ms",
                "--manager-only",
            ])
            .stdout(out)
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            verb: verb.to_string(),
            child: Some(child),
            dir,
            socket,
            addr,
        };
        d.wait_ready(Duration::from_secs(30));
        d
    }

    fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.socket.exists() && self.ctl(&["node", "ls", "-q"]).status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "swarmd did not become ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What swarmd wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("swarmd-{}.log", self.verb)))
            .unwrap_or_default()
    }

    /// What swarmd wrote to stdout.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("swarmd-{}.out", self.verb)))
            .unwrap_or_default()
    }

    /// Runs `swarmctl --socket <socket> args...`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl_with(&["--socket", self.socket.to_str().unwrap()], args, None)
    }

    /// Stops the daemon with SIGTERM and returns whether it exited cleanly
    /// within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs swarmctl with connection args, then command args, optional stdin.
pub fn ctl_with(conn: &[&str], args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmctl"));
    cmd.args(conn).args(args).env_remove("SWARM_HOST");
    if let Some(data) = stdin {
        use std::io::Write;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        return child.wait_with_output().unwrap();
    }
    cmd.output().unwrap()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "swarmctl failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts failure and returns stderr.
pub fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "swarmctl should have failed:\nstdout: {}",
        stdout(&o)
    );
    stderr(&o)
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
