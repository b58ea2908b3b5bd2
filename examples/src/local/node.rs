//! One `swarmd` process of a local cluster.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{ClusterOptions, LocalError, io};
use crate::ctl::connect::SOCKET_NAME;

/// What a node joined as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A manager (which also runs tasks unless drained).
    Manager,
    /// A worker.
    Worker,
}

impl Role {
    /// The name `swarmctl cluster join-token` takes.
    pub fn name(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

/// A node of a local cluster: its address, state directory and process.
#[derive(Debug)]
pub struct LocalNode {
    /// The node's name, also its reported host name.
    pub name: String,
    /// `ip:port` it listens on.
    pub addr: String,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// What it joined as.
    pub role: Role,
    /// The file its standard error (the log) goes to.
    pub log: PathBuf,
    /// The file its standard output goes to.
    pub out: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl LocalNode {
    pub(super) fn new(
        name: &str,
        ip: &str,
        options: &ClusterOptions,
        role: Role,
        extra: &[&str],
    ) -> LocalNode {
        LocalNode {
            name: name.to_string(),
            addr: format!("{ip}:{}", options.port),
            state_dir: options.root.join(name),
            role,
            log: options.root.join(format!("{name}.log")),
            out: options.root.join(format!("{name}.out")),
            extra: extra.iter().map(ToString::to_string).collect(),
            child: None,
        }
    }

    /// The node's control socket (managers only).
    pub fn socket(&self) -> PathBuf {
        self.state_dir.join(SOCKET_NAME)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs (as far as this harness knows).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// What it printed on standard output.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub(super) fn common_args(&self, raft_tick: &str) -> Vec<String> {
        let mut args = vec![
            "--state-dir".to_string(),
            self.state_dir.display().to_string(),
            "--listen-addr".to_string(),
            self.addr.clone(),
            "--hostname".to_string(),
            self.name.clone(),
            "--raft-tick".to_string(),
            raft_tick.to_string(),
        ];
        args.extend(self.extra.iter().cloned());
        args
    }

    pub(super) fn spawn(&mut self, swarmd: &Path, args: &[String]) -> Result<(), LocalError> {
        if self.child.is_some() {
            return Ok(());
        }
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(io(format!("opening {}", p.display())))
        };
        let child = Command::new(swarmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(open(&self.out)?)
            .stderr(open(&self.log)?)
            .env("RUST_LOG", "info,openraft=warn")
            .spawn()
            .map_err(io(format!("starting {}", swarmd.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Fails when the process exited on its own.
    pub(super) fn check_alive(&mut self) -> Result<(), LocalError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(LocalError::Exited {
                    name: self.name.clone(),
                    status: status.to_string(),
                    log: self.log_tail(30),
                })
            }
            Err(e) => Err(io(format!("checking swarmd {}", self.name))(e)),
        }
    }

    /// Waits for the process to exit on its own (a refused join), for at
    /// most `limit`; returns its exit code (None: killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Option<i32>, LocalError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let start = Instant::now();
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(io(format!("waiting for swarmd {}", self.name)))?
            {
                self.child = None;
                return Ok(status.code());
            }
            if start.elapsed() > limit {
                return Err(LocalError::Timeout {
                    what: format!("swarmd {} to exit", self.name),
                    after: limit,
                    last: None,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn kill(&mut self) -> Result<(), LocalError> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(io(format!("killing swarmd {}", self.name)))?;
            child
                .wait()
                .map_err(io(format!("reaping swarmd {}", self.name)))?;
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub(super) fn terminate(&mut self, grace: Duration) -> Result<(), LocalError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let pid = i32::try_from(child.id()).unwrap_or(0);
        if pid > 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()
    }
}
