//! The table of agent sessions: who is connected, until when they count as
//! alive, and the registration rate limit.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use swarm_api::v1::SessionMessage;
use tokio::sync::mpsc;
use tonic::Status;

/// The session stream of one agent.
pub(crate) type SessionTx = mpsc::Sender<Result<SessionMessage, Status>>;

struct Session {
    /// Empty for a node expected to reconnect after a leader change.
    id: String,
    deadline: Instant,
    stream: Option<SessionTx>,
}

/// Sessions by node id.
#[derive(Default)]
pub(crate) struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    registrations: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Sessions {
    /// Counts a registration of `node`; false when it registered too often.
    pub(crate) fn allow_registration(
        &self,
        node: &str,
        now: Instant,
        limit: usize,
        window: Duration,
    ) -> bool {
        let mut regs = self.registrations.lock();
        let times = regs.entry(node.to_string()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            times.pop_front();
        }
        if times.len() >= limit {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Opens a session for `node`, replacing any previous one (whose stream
    /// ends). Returns the new session id.
    pub(crate) fn open(&self, node: &str, stream: SessionTx, deadline: Instant) -> String {
        let id = swarm_api::id::new_id();
        self.live.lock().insert(
            node.to_string(),
            Session {
                id: id.clone(),
                deadline,
                stream: Some(stream),
            },
        );
        id
    }

    /// A node that was ready before this manager became leader: it gets
    /// until `deadline` to open a session.
    pub(crate) fn expect(&self, node: &str, deadline: Instant) {
        self.live.lock().entry(node.to_string()).or_insert(Session {
            id: String::new(),
            deadline,
            stream: None,
        });
    }

    /// Checks that `session_id` is the current session of `node`.
    pub(crate) fn check(&self, node: &str, session_id: &str) -> Result<(), Status> {
        match self.live.lock().get(node) {
            Some(s) if !s.id.is_empty() && s.id == session_id => Ok(()),
            _ => Err(Status::not_found(
                "session invalid or expired: open a new session",
            )),
        }
    }

    /// Records a heartbeat.
    pub(crate) fn beat(
        &self,
        node: &str,
        session_id: &str,
        deadline: Instant,
    ) -> Result<(), Status> {
        match self.live.lock().get_mut(node) {
            Some(s) if !s.id.is_empty() && s.id == session_id => {
                s.deadline = deadline;
                Ok(())
            }
            _ => Err(Status::not_found(
                "session invalid or expired: open a new session",
            )),
        }
    }

    /// Removes and returns the nodes whose deadline passed.
    pub(crate) fn take_expired(&self, now: Instant) -> Vec<String> {
        let mut live = self.live.lock();
        let gone: Vec<String> = live
            .iter()
            .filter(|(_, s)| s.deadline < now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            live.remove(n);
        }
        gone
    }

    /// The session stream of a node, to push a message.
    pub(crate) fn stream(&self, node: &str) -> Option<SessionTx> {
        self.live.lock().get(node).and_then(|s| s.stream.clone())
    }

    /// Number of open sessions.
    pub(crate) fn len(&self) -> usize {
        self.live
            .lock()
            .values()
            .filter(|s| !s.id.is_empty())
            .count()
    }

    /// Drops every session (leadership lost): their streams end.
    pub(crate) fn clear(&self) {
        self.live.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_replaced() {
        let s = Sessions::default();
        let now = Instant::now();
        let (tx, _rx) = mpsc::channel(1);
        let first = s.open("n1", tx.clone(), now + Duration::from_secs(1));
        assert!(s.check("n1", &first).is_ok());
        let second = s.open("n1", tx, now + Duration::from_secs(1));
        assert!(
            s.check("n1", &first).is_err(),
            "a replaced session is invalid"
        );
        assert!(s.beat("n1", &second, now + Duration::from_secs(10)).is_ok());
        s.expect("n2", now + Duration::from_secs(2));
        assert!(
            s.check("n2", "").is_err(),
            "an expected node has no session yet"
        );
        assert_eq!(
            s.take_expired(now + Duration::from_secs(5)),
            vec!["n2".to_string()]
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn registration_is_rate_limited_per_node() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(8);
        assert!((0..3).all(|_| s.allow_registration("n", t0, 3, w)));
        assert!(!s.allow_registration("n", t0, 3, w));
        assert!(s.allow_registration("other", t0, 3, w));
        assert!(s.allow_registration("n", t0 + Duration::from_secs(9), 3, w));
    }
}
