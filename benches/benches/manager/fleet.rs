//! The fake agents of a run: joined once through the CA, then connected in
//! steps as the scenarios need more of them; past
//! [`LOCAL_MAX`](crate::remote::LOCAL_MAX), in a child process.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::agent::{Agent, Stats};
use crate::join::Joined;
use crate::out;
use crate::remote::{LOCAL_MAX, RemoteFleet};

/// Agents connected at once before waiting for their sessions.
const CONNECT_STEP: usize = 250;

/// Joined nodes and the agents running for some of them.
pub struct Fleet {
    addr: String,
    joined: Vec<Joined>,
    /// Running agents, in join order.
    pub agents: Vec<Agent>,
    /// Counters of the agents in this process.
    pub stats: Arc<Stats>,
    /// The join token, for agents in a child process.
    token: Option<String>,
    /// Agents in a child process, after the local ones.
    remote: Option<RemoteFleet>,
}

impl Fleet {
    /// A fleet of joined nodes, none connected yet.
    pub fn new(addr: &str, joined: Vec<Joined>) -> Fleet {
        Fleet {
            addr: addr.to_string(),
            joined,
            agents: Vec::new(),
            stats: Arc::default(),
            token: None,
            remote: None,
        }
    }

    /// Lets the fleet grow past [`LOCAL_MAX`] agents, in a child process
    /// joining with `token`.
    pub fn with_remote(mut self, token: &swarm_pki::JoinToken) -> Fleet {
        self.token = Some(token.to_string());
        self
    }

    /// Agents running, here and in the child.
    pub fn len(&self) -> usize {
        self.agents.len() + self.remote.as_ref().map_or(0, |r| r.node_ids.len())
    }

    /// Node ids of the running agents: local ones first.
    pub fn node_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.agents.iter().map(|a| a.node_id.clone()).collect();
        if let Some(r) = &self.remote {
            ids.extend(r.node_ids.iter().cloned());
        }
        ids
    }

    /// Agent `i` (in [`Fleet::node_ids`] order) stops heartbeating.
    pub fn go_silent(&mut self, i: usize) {
        match self.agents.get(i) {
            Some(a) => a.go_silent(),
            None => {
                let k = i - self.agents.len();
                if let Some(r) = &mut self.remote {
                    r.go_silent(k);
                }
            }
        }
    }

    /// Every agent heartbeats with unary calls (`true`) or streams.
    pub fn set_unary(&mut self, unary: bool) {
        self.stats.unary.store(unary, Ordering::Relaxed);
        if let Some(r) = &mut self.remote {
            r.set_unary(unary);
        }
    }

    /// Nodes joined.
    pub fn joined(&self) -> usize {
        self.joined.len()
    }

    /// Starts agents until `n` run, each with a session open. Returns the
    /// time it took.
    pub async fn grow_to(&mut self, n: usize) -> Duration {
        let started = Instant::now();
        let (local, rest) = match &self.token {
            Some(_) if n > LOCAL_MAX => (LOCAL_MAX, n - LOCAL_MAX),
            _ => (n, 0),
        };
        let n = local.min(self.joined.len());
        while self.agents.len() < n {
            let from = self.agents.len();
            let to = (from + CONNECT_STEP).min(n);
            for j in &self.joined[from..to] {
                self.agents.push(Agent::start(
                    &self.addr,
                    &j.tls,
                    j.node_id.clone(),
                    self.stats.clone(),
                ));
            }
            self.wait_sessions(from..to, Duration::from_secs(120)).await;
        }
        if rest > 0 && self.remote.is_none() {
            let token = self.token.clone().unwrap_or_default();
            out(format!("starting {rest} more agents in a child process"));
            self.remote = Some(RemoteFleet::start(&self.addr, &token, rest).await);
        }
        let n = self.len();
        let took = started.elapsed();
        out(format!(
            "{n} agents connected ({:.1} s for this step; {} session errors so far)",
            took.as_secs_f64(),
            self.stats.session_errors.load(Ordering::Relaxed)
        ));
        took
    }

    async fn wait_sessions(&self, range: std::ops::Range<usize>, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let missing: Vec<&Agent> = self.agents[range.clone()]
                .iter()
                .filter(|a| a.session().is_none())
                .collect();
            if missing.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} agents have no session after {limit:?}; last error: {:?}",
                    missing.len(),
                    missing.iter().find_map(|a| a.last_error())
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
