//! The table of agent sessions: who is connected, until when they count as
//! alive, and the registration rate limit.
//!
//! Deadlines are kept in a queue ordered by time, one entry per session,
//! so that finding the expired ones does not scan every session, and the
//! dispatcher can sleep until the first one falls due. A beat only moves
//! its session's deadline (no queue work): when the entry comes up and
//! the deadline has moved, the entry is queued again for the new one. So
//! the queue costs each session one step per grace period, not one per
//! beat.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
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
    /// The time of this session's entry in the deadline queue.
    queued: Instant,
}

/// The sessions and their deadline queue.
#[derive(Default)]
struct Table {
    sessions: HashMap<String, Session>,
    /// (time, node): due to be looked at then. An entry whose time is not
    /// its session's `queued` any more is stale and dropped.
    due: BinaryHeap<Reverse<(Instant, String)>>,
}

impl Table {
    /// Puts a session of `node` in place (replacing any), queueing its
    /// deadline unless the node's entry already comes up by then.
    fn insert(&mut self, node: &str, id: String, deadline: Instant, stream: Option<SessionTx>) {
        let queued = match self.sessions.get(node).map(|s| s.queued) {
            Some(q) if q <= deadline => q,
            _ => {
                self.due.push(Reverse((deadline, node.to_string())));
                deadline
            }
        };
        let session = Session {
            id,
            deadline,
            stream,
            queued,
        };
        self.sessions.insert(node.to_string(), session);
    }
}

/// Sessions by node id.
#[derive(Default)]
pub(crate) struct Sessions {
    live: Mutex<Table>,
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
        self.live
            .lock()
            .insert(node, id.clone(), deadline, Some(stream));
        id
    }

    /// A node that was ready before this manager became leader: it gets
    /// until `deadline` to open a session.
    pub(crate) fn expect(&self, node: &str, deadline: Instant) {
        let mut live = self.live.lock();
        if !live.sessions.contains_key(node) {
            live.insert(node, String::new(), deadline, None);
        }
    }

    /// Checks that `session_id` is the current session of `node`.
    pub(crate) fn check(&self, node: &str, session_id: &str) -> Result<(), Status> {
        match self.live.lock().sessions.get(node) {
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
        match self.live.lock().sessions.get_mut(node) {
            Some(s) if !s.id.is_empty() && s.id == session_id => {
                // Deadlines only move later here: the queue entry stays.
                s.deadline = s.deadline.max(deadline);
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
        let mut gone = Vec::new();
        while let Some(Reverse((at, _))) = live.due.peek()
            && *at < now
        {
            let Some(Reverse((at, node))) = live.due.pop() else {
                break;
            };
            let Some(s) = live.sessions.get_mut(&node) else {
                continue;
            };
            if s.queued != at {
                continue; // a stale entry: the session was queued again
            }
            if s.deadline < now {
                live.sessions.remove(&node);
                gone.push(node);
            } else {
                s.queued = s.deadline;
                let again = Reverse((s.deadline, node));
                live.due.push(again);
            }
        }
        gone
    }

    /// When the first deadline may fall due (`None`: no session).
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.live.lock().due.peek().map(|Reverse((at, _))| *at)
    }

    /// The session stream of a node, to push a message.
    pub(crate) fn stream(&self, node: &str) -> Option<SessionTx> {
        self.live
            .lock()
            .sessions
            .get(node)
            .and_then(|s| s.stream.clone())
    }

    /// Number of open sessions.
    pub(crate) fn len(&self) -> usize {
        self.live
            .lock()
            .sessions
            .values()
            .filter(|s| !s.id.is_empty())
            .count()
    }

    /// Drops every session (leadership lost): their streams end.
    pub(crate) fn clear(&self) {
        let mut live = self.live.lock();
        live.sessions.clear();
        live.due.clear();
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
    fn a_session_expires_at_its_last_deadline_without_a_scan() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let secs = |n: u64| t0 + Duration::from_secs(n);
        let (tx, _rx) = mpsc::channel(1);
        let id = s.open("n", tx.clone(), secs(10));
        assert_eq!(s.next_due(), Some(secs(10)));
        // Beats only move the deadline; the queue entry comes up at the
        // first one and is queued again for the last.
        s.beat("n", &id, secs(20)).unwrap();
        s.beat("n", &id, secs(25)).unwrap();
        assert_eq!(s.next_due(), Some(secs(10)));
        assert!(s.take_expired(secs(11)).is_empty());
        assert_eq!(s.next_due(), Some(secs(25)));
        assert!(s.take_expired(secs(24)).is_empty());
        assert_eq!(s.take_expired(secs(26)), vec!["n".to_string()]);
        assert_eq!(s.next_due(), None);

        // A node expected after a leader change (long deadline) that opens
        // a session (shorter one) and then goes silent expires at the
        // shorter one; the stale long entry is dropped when it comes up.
        s.expect("m", secs(60));
        let m = s.open("m", tx, secs(40));
        assert_eq!(s.next_due(), Some(secs(40)));
        assert_eq!(s.take_expired(secs(41)), vec!["m".to_string()]);
        assert!(s.take_expired(secs(61)).is_empty());
        assert!(s.check("m", &m).is_err());
        assert_eq!(s.next_due(), None);
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
