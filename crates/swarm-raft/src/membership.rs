//! Changing who the managers are: joining (learner first, promoted once
//! caught up), removing with SwarmKit's quorum-safety rule, transferring
//! leadership, and restarting a lost cluster from one member's data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, EntryPayload, Membership, RaftMetrics, ServerState};
use swarm_api::v1::raft_client::RaftClient;
use swarm_api::v1::raft_membership_client::RaftMembershipClient;
use swarm_api::v1::{LeaveRequest, RaftPayload};

use crate::error::RaftNodeError;
use crate::node::{Inner, RaftNode};
use crate::types::{Entry, LogId, Member, NodeId, Raft, Vote};
use crate::wal::{Wal, WalOptions};

/// Runs a membership change, waiting out a change already in progress
/// (each change commits a joint then a uniform configuration).
async fn change(
    raft: &Raft,
    changes: ChangeMembers<NodeId, Member>,
    patience: Duration,
) -> Result<(), RaftNodeError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match raft.change_membership(changes.clone(), false).await {
            Ok(_) => return Ok(()),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            ))) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(write_err(e)),
        }
    }
}

fn write_err(e: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> RaftNodeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => RaftNodeError::NotLeader {
            leader: f.leader_id,
        },
        other => RaftNodeError::Raft(other.to_string()),
    }
}

impl RaftNode {
    fn leader_metrics(&self) -> Result<(Raft, RaftMetrics<NodeId, Member>), RaftNodeError> {
        let raft = self.inner.raft()?;
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(RaftNodeError::NotLeader {
                leader: m.current_leader,
            });
        }
        Ok((raft, m))
    }

    /// Adds a manager reachable at `addr` as a learner and returns the raft
    /// id it must start with and the current members. It becomes a voter
    /// once it has caught up. Leader only.
    pub async fn join(
        &self,
        addr: &str,
    ) -> Result<(NodeId, BTreeMap<NodeId, String>), RaftNodeError> {
        let (raft, m) = self.leader_metrics()?;
        let membership = m.membership_config.membership().clone();
        if let Some((id, _)) = membership.nodes().find(|(_, n)| n.addr == addr) {
            return Err(RaftNodeError::Refused(format!(
                "address {addr} already belongs to member {id:x}"
            )));
        }
        let id = loop {
            let id: NodeId = rand::random();
            if id != 0 && membership.get_node(&id).is_none() {
                break id;
            }
        };
        let nodes = BTreeMap::from([(
            id,
            Member {
                addr: addr.to_string(),
            },
        )]);
        change(
            &raft,
            ChangeMembers::AddNodes(nodes),
            self.inner.election_max() * 4,
        )
        .await?;
        let mut members: BTreeMap<NodeId, String> = membership
            .nodes()
            .map(|(i, n)| (*i, n.addr.clone()))
            .collect();
        members.insert(id, addr.to_string());
        Ok((id, members))
    }

    /// Removes (or demotes) a manager. Refused when it would leave the
    /// remaining voters without a reachable quorum (SwarmKit's rule) and
    /// for the last voter. A leader removing itself first hands leadership
    /// to another voter. Leader only.
    pub async fn remove(&self, id: NodeId) -> Result<(), RaftNodeError> {
        let (raft, m) = self.leader_metrics()?;
        let membership = m.membership_config.membership().clone();
        if membership.get_node(&id).is_none() {
            return Err(RaftNodeError::Refused(format!("{id:x} is not a member")));
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if !voters.contains(&id) {
            let patience = self.inner.election_max() * 4;
            return change(
                &raft,
                ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                patience,
            )
            .await;
        }
        if voters.len() == 1 {
            return Err(RaftNodeError::Refused(
                "cannot remove the last manager".into(),
            ));
        }
        let remaining: Vec<NodeId> = voters.iter().copied().filter(|v| *v != id).collect();
        let window = self.inner.election_max();
        let reachable = remaining
            .iter()
            .filter(|v| **v == self.inner.id || self.inner.reach.recent(**v, window))
            .count();
        if reachable * 2 <= remaining.len() {
            return Err(RaftNodeError::Refused(format!(
                "removing {id:x} would leave {reachable} of {} remaining managers reachable, not a quorum",
                remaining.len()
            )));
        }
        if id == self.inner.id {
            let new_leader = self.transfer_leadership(None).await?;
            let addr = membership
                .get_node(&new_leader)
                .map(|n| n.addr.clone())
                .unwrap_or_default();
            let channel = self
                .inner
                .connector
                .channel(&addr)
                .map_err(|e| RaftNodeError::Remote(e.to_string()))?;
            // The new leader judges reachability from its own replies, which
            // it has only just started to receive: while it refuses on the
            // quorum rule, give it a few heartbeat rounds before giving up.
            let mut client = RaftMembershipClient::new(channel);
            let deadline = tokio::time::Instant::now() + self.inner.election_max() * 4;
            loop {
                match client.leave(LeaveRequest { raft_id: id }).await {
                    Ok(_) => return Ok(()),
                    Err(s)
                        if s.code() == tonic::Code::FailedPrecondition
                            && s.message().contains("not a quorum")
                            && tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(self.inner.election_max() / 4).await;
                    }
                    Err(s) => return Err(RaftNodeError::Remote(s.message().to_string())),
                }
            }
        }
        change(
            &raft,
            ChangeMembers::RemoveVoters(BTreeSet::from([id])),
            self.inner.election_max() * 4,
        )
        .await
    }

    /// Hands leadership to `to` (or to the most up-to-date voter) and
    /// returns the new leader. The leader stops heartbeating and taking
    /// writes, waits for its lease to run out, and asks the target to
    /// campaign. Leader only.
    pub async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<NodeId, RaftNodeError> {
        let (raft, m) = self.leader_metrics()?;
        let membership = m.membership_config.membership().clone();
        let last = m.last_log_index;
        let matched = |id: &NodeId| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index)
        };
        let target = match to {
            Some(t) if t != self.inner.id && membership.voter_ids().any(|v| v == t) => t,
            Some(t) => {
                return Err(RaftNodeError::Refused(format!(
                    "{t:x} is not another voter"
                )));
            }
            None => membership
                .voter_ids()
                .filter(|v| *v != self.inner.id)
                .max_by_key(|v| matched(v))
                .ok_or_else(|| {
                    RaftNodeError::Refused("no other voter to hand leadership to".into())
                })?,
        };
        // Stop taking writes, then let the target catch up with what is
        // in flight (under load the leader's log is always a few entries
        // ahead: its appends do not wait for its own sync).
        self.inner.transferring.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + self.inner.election_max() * 4;
        loop {
            let m = raft.metrics().borrow().clone();
            let caught_up = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&target).cloned().flatten())
                .map(|l| l.index)
                >= m.last_log_index;
            if caught_up || last.is_none() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                self.inner.transferring.store(false, Ordering::SeqCst);
                return Err(RaftNodeError::Timeout(format!(
                    "{target:x} did not catch up"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        raft.runtime_config().heartbeat(false);
        raft.runtime_config().elect(false);
        let outcome = async {
            tokio::time::sleep(self.inner.election_max() + self.inner.config.heartbeat).await;
            let addr = membership
                .get_node(&target)
                .map(|n| n.addr.clone())
                .unwrap_or_default();
            let channel = self
                .inner
                .connector
                .channel(&addr)
                .map_err(|e| RaftNodeError::Remote(e.to_string()))?;
            RaftClient::new(channel)
                .transfer_leader(RaftPayload { data: Vec::new() })
                .await
                .map_err(|s| RaftNodeError::Remote(s.message().to_string()))?;
            let deadline = tokio::time::Instant::now() + self.inner.election_max() * 4;
            loop {
                let m = raft.metrics().borrow().clone();
                if let Some(l) = m.current_leader.filter(|l| *l != self.inner.id) {
                    return Ok(l);
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(RaftNodeError::Timeout(
                        "no other member took over leadership".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        .await;
        raft.runtime_config().elect(true);
        raft.runtime_config().heartbeat(true);
        self.inner.transferring.store(false, Ordering::SeqCst);
        outcome
    }

    /// Asks this member to campaign now (the target side of a transfer).
    pub(crate) async fn campaign(&self) -> Result<(), RaftNodeError> {
        self.inner
            .raft()?
            .trigger()
            .elect()
            .await
            .map_err(|e| RaftNodeError::Raft(e.to_string()))
    }

    /// Rewrites the log in `dir` so that, when started, its member is the
    /// only voter of a new cluster keeping all the data: SwarmKit's
    /// `--force-new-cluster`, for when a quorum of managers is lost for
    /// good. Run it on a stopped member.
    pub fn force_new_cluster(dir: &Path, id: NodeId, addr: &str) -> Result<(), RaftNodeError> {
        let (mut wal, recovered) = Wal::open(&dir.join("wal"), WalOptions::default())?;
        let last: Option<LogId> = recovered
            .entries
            .last()
            .map(|e| e.log_id)
            .or(recovered.purged);
        let last_term = last.map_or(0, |l| l.leader_id.term);
        let term = recovered
            .vote
            .map_or(0, |v| v.leader_id.term)
            .max(last_term)
            + 1;
        let index = last.map_or(0, |l| l.index + 1);
        let membership = Membership::new(
            vec![BTreeSet::from([id])],
            BTreeMap::from([(
                id,
                Member {
                    addr: addr.to_string(),
                },
            )]),
        );
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(term, id), index),
            payload: EntryPayload::Membership(membership),
        };
        wal.append(std::slice::from_ref(&entry))?;
        wal.sync()?;
        wal.save_vote(&Vote::new(term, id))?;
        Ok(())
    }
}

/// Whether a learner whose replication reached `matched` is close enough
/// to the leader's `last` index to vote. A learner that never answered
/// (nothing matched yet) is not: it may not even be running, and as a
/// voter it would stall every commit until it is.
fn caught_up(matched: Option<LogId>, last: u64, within: u64) -> bool {
    matched.is_some_and(|m| m.index.saturating_add(within) >= last)
}

/// Promotes learners within `promote_within` entries of the leader.
pub(crate) async fn promote_caught_up(inner: &Inner, raft: &Raft, m: &RaftMetrics<NodeId, Member>) {
    let membership = m.membership_config.membership();
    let Some(last) = m.last_log_index else { return };
    let ready: BTreeSet<NodeId> = membership
        .learner_ids()
        .filter(|id| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten());
            caught_up(matched, last, inner.config.promote_within)
        })
        .collect();
    if ready.is_empty() {
        return;
    }
    tracing::info!(learners = ?ready, "promoting caught-up learners to voters");
    if let Err(e) = raft
        .change_membership(ChangeMembers::AddVoterIds(ready), false)
        .await
    {
        tracing::warn!(error = %e, "promoting learners failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: u64) -> Option<LogId> {
        Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), index))
    }

    #[test]
    fn a_learner_that_never_answered_is_not_caught_up() {
        // The leader is only a few entries in: "0 matched" would look close.
        assert!(!caught_up(None, 7, 100));
        assert!(caught_up(at(0), 7, 100), "it answered, and is close");
        assert!(caught_up(at(7), 7, 0));
        assert!(!caught_up(at(6), 7, 0));
        assert!(!caught_up(at(10), 500, 100), "too far behind");
    }
}
