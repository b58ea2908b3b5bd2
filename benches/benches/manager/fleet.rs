//! The fake agents of a run: joined once through the CA, then connected in
//! steps as the scenarios need more of them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::agent::{Agent, Stats};
use crate::join::Joined;
use crate::out;

/// Agents connected at once before waiting for their sessions.
const CONNECT_STEP: usize = 250;

/// Joined nodes and the agents running for some of them.
pub struct Fleet {
    addr: String,
    joined: Vec<Joined>,
    /// Running agents, in join order.
    pub agents: Vec<Agent>,
    /// Counters of all agents.
    pub stats: Arc<Stats>,
}

impl Fleet {
    /// A fleet of joined nodes, none connected yet.
    pub fn new(addr: &str, joined: Vec<Joined>) -> Fleet {
        Fleet {
            addr: addr.to_string(),
            joined,
            agents: Vec::new(),
            stats: Arc::default(),
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
        let n = n.min(self.joined.len());
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
