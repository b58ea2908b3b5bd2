//! Agents in a child process: each agent holds one connection, and the
//! manager's side another, so 10k agents and the manager in one process
//! need more descriptors than the hard limit of some machines (20,000
//! here). Past [`LOCAL_MAX`] agents, the rest run in a copy of this binary
//! that joins its own nodes through the CA, as real nodes would, and
//! takes commands on its stdin. Its CPU is not the manager's, like the
//! load generator's.
//!
//! Protocol: the child prints `FLEET node <id>` per agent, then
//! `FLEET ready`; it reads `unary 0|1` (heartbeat transport) and
//! `silent <i>` (agent `i` stops heartbeating) lines, and exits at the end
//! of its input. Other lines it prints are progress, passed on.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::fleet::Fleet;
use crate::out;

/// Agents run in the bench's own process, at most (2 descriptors each).
pub const LOCAL_MAX: usize = 6_000;

/// Environment variables of the child.
const CHILD: &str = "SWARM_BENCH_FLEET_CHILD";
const ADDR: &str = "SWARM_BENCH_FLEET_ADDR";
const TOKEN: &str = "SWARM_BENCH_FLEET_TOKEN";
const COUNT: &str = "SWARM_BENCH_FLEET_COUNT";

/// The parent's handle on a child fleet.
pub struct RemoteFleet {
    child: Child,
    stdin: ChildStdin,
    /// Node ids of the child's agents, in its order.
    pub node_ids: Vec<String>,
}

impl RemoteFleet {
    /// Starts `count` agents in a child process against the manager at
    /// `addr`, joining with `token`; returns once every one has a session.
    pub async fn start(addr: &str, token: &str, count: usize) -> RemoteFleet {
        let exe = std::env::current_exe().expect("the bench binary's path");
        let mut child = Command::new(exe)
            .env(CHILD, "1")
            .env(ADDR, addr)
            .env(TOKEN, token)
            .env(COUNT, count.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the child fleet starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut node_ids = Vec::with_capacity(count);
        loop {
            match rx.try_recv() {
                Ok(line) => match line.strip_prefix("FLEET ") {
                    Some("ready") => break,
                    Some(rest) => {
                        if let Some(id) = rest.strip_prefix("node ") {
                            node_ids.push(id.to_string());
                        }
                    }
                    None => out(format!("child fleet: {line}")),
                },
                Err(mpsc::TryRecvError::Empty) => {
                    assert!(
                        Instant::now() < deadline,
                        "the child fleet did not get ready"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(mpsc::TryRecvError::Disconnected) => panic!("the child fleet exited"),
            }
        }
        // Progress after ready is dropped with the channel's reader.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        assert_eq!(node_ids.len(), count, "the child fleet's agents");
        RemoteFleet {
            child,
            stdin,
            node_ids,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("a command to the child fleet");
        self.stdin.flush().expect("a command to the child fleet");
    }

    /// Switches the child's agents to unary heartbeats or back to streams.
    pub fn set_unary(&mut self, unary: bool) {
        self.send(if unary { "unary 1" } else { "unary 0" });
    }

    /// Silences the child's agent `i`.
    pub fn go_silent(&mut self, i: usize) {
        self.send(&format!("silent {i}"));
    }
}

impl Drop for RemoteFleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the child fleet if this process is one; false otherwise.
pub fn child_main() -> bool {
    if std::env::var_os(CHILD).is_none() {
        return false;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} unset"));
    let addr = var(ADDR);
    let token: swarm_pki::JoinToken = var(TOKEN).parse().expect("a join token");
    let count: usize = var(COUNT).parse().expect("an agent count");
    crate::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fleet-rt")
        .enable_all()
        .build()
        .expect("the child fleet's runtime");
    rt.block_on(async {
        let (joined, _) = crate::join::join_many(&addr, &token, count, 32).await;
        let mut fleet = Fleet::new(&addr, joined);
        fleet.grow_to(count).await;
        let mut lines = String::new();
        for a in &fleet.agents {
            lines += &format!("FLEET node {}\n", a.node_id);
        }
        lines += "FLEET ready";
        println!("{lines}");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(cmd) = rx.recv().await {
            match cmd.split_once(' ') {
                Some(("unary", v)) => fleet.stats.unary.store(v == "1", Ordering::Relaxed),
                Some(("silent", i)) => {
                    if let Some(a) = i.parse::<usize>().ok().and_then(|i| fleet.agents.get(i)) {
                        a.go_silent();
                    }
                }
                _ => {}
            }
        }
    });
    true
}
