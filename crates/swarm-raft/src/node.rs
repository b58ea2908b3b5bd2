//! A raft member: the openraft instance over the WAL and the store, its
//! transport, and the leader's watchdog (CheckQuorum and learner promotion).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::ServerState;
use parking_lot::{Mutex, RwLock};
use swarm_store::Store;
use tokio::task::JoinHandle;

use crate::batching::{ProposalStats, Queue};
use crate::config::RaftConfig;
use crate::error::RaftNodeError;
use crate::faults::Faults;
use crate::log_store::LogStore;
use crate::network::{Connector, Network, Reach};
use crate::state_machine::StateMachine;
use crate::types::{Member, NodeId, Raft};
use crate::wal::{WalExtent, WalOptions, WalStats};

/// Everything needed to start a member.
pub struct RaftNodeBuilder {
    id: NodeId,
    addr: String,
    dir: PathBuf,
    store: Store,
    config: RaftConfig,
    connector: Arc<dyn Connector>,
    faults: Faults,
    cluster: String,
}

impl RaftNodeBuilder {
    /// A member with raft id `id`, reachable by the others at `addr`,
    /// keeping its log and snapshots under `dir`, applying to `store`, and
    /// reaching the others through `connector`.
    pub fn new(
        id: NodeId,
        addr: impl Into<String>,
        dir: impl Into<PathBuf>,
        store: Store,
        connector: Arc<dyn Connector>,
    ) -> Self {
        RaftNodeBuilder {
            id,
            addr: addr.into(),
            dir: dir.into(),
            store,
            config: RaftConfig::default(),
            connector,
            faults: Faults::default(),
            cluster: "swarm".into(),
        }
    }

    /// Timings and sizes (default: SwarmKit's).
    pub fn config(mut self, config: RaftConfig) -> Self {
        self.config = config;
        self
    }

    /// Fault injection shared with the transport (tests, chaos drills).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Opens the log and snapshots (verifying them), loads the newest
    /// snapshot into the store, and starts the member. It takes part in
    /// elections once it is part of a cluster: see [`RaftNode::bootstrap`]
    /// and [`RaftNode::join`].
    pub async fn start(self) -> Result<RaftNode, RaftNodeError> {
        let oconfig = Arc::new(
            self.config
                .openraft(&self.cluster)
                .map_err(RaftNodeError::Config)?,
        );
        let wal_options = WalOptions {
            max_segment_bytes: self.config.max_segment_bytes,
            ..WalOptions::default()
        };
        let (log, _recovered) = LogStore::open(&self.dir.join("wal"), wal_options)?;
        let sm = StateMachine::open(
            self.store.clone(),
            self.dir.join("snapshots"),
            self.config.keep_snapshots,
        )?;
        // The leader's appends are synced in the background; the state
        // machine and the commit position sent out wait for them.
        sm.follow_log(&log);
        log.attach(self.id, self.faults.clone());
        let queue = Queue::new(self.config.proposals_in_flight);
        let inner = Arc::new(Inner {
            id: self.id,
            addr: self.addr,
            config: self.config,
            oconfig,
            raft: RwLock::new(None),
            log,
            sm,
            store: self.store,
            connector: self.connector,
            faults: self.faults,
            reach: Arc::new(Reach::default()),
            transferring: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            queue,
            tasks: Mutex::new(Vec::new()),
        });
        let raft = inner.new_raft().await?;
        *inner.raft.write() = Some(raft);
        let watchdog = tokio::spawn(watchdog(Arc::downgrade(&inner)));
        inner.tasks.lock().push(watchdog);
        Ok(RaftNode { inner })
    }
}

pub(crate) struct Inner {
    pub(crate) id: NodeId,
    pub(crate) addr: String,
    pub(crate) config: RaftConfig,
    oconfig: Arc<openraft::Config>,
    raft: RwLock<Option<Raft>>,
    log: LogStore,
    sm: StateMachine,
    pub(crate) store: Store,
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) faults: Faults,
    pub(crate) reach: Arc<Reach>,
    pub(crate) transferring: AtomicBool,
    /// Set by [`RaftNode::shutdown`]: no raft instance may start after it.
    stopped: AtomicBool,
    /// Transactions waiting to be proposed (see [`crate::batching`]).
    pub(crate) queue: Queue,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    async fn new_raft(&self) -> Result<Raft, RaftNodeError> {
        let network = Network {
            self_id: self.id,
            connector: self.connector.clone(),
            faults: self.faults.clone(),
            reach: self.reach.clone(),
            durable: self.log.durable_end(),
        };
        Raft::new(
            self.id,
            self.oconfig.clone(),
            network,
            self.log.clone(),
            self.sm.clone(),
        )
        .await
        .map_err(|e| RaftNodeError::Raft(e.to_string()))
    }

    /// The current openraft handle.
    pub(crate) fn raft(&self) -> Result<Raft, RaftNodeError> {
        self.raft
            .read()
            .clone()
            .ok_or_else(|| RaftNodeError::Raft("stopped".into()))
    }

    /// Longest election timeout: a leader lease lasts this long.
    pub(crate) fn election_max(&self) -> Duration {
        Duration::from_millis(self.oconfig.election_timeout_max)
    }

    /// Steps down by restarting the raft instance over the same log and
    /// store: it comes back as a follower (SwarmKit's CheckQuorum).
    async fn step_down(&self) -> Result<(), RaftNodeError> {
        let Some(old) = self.raft.write().take() else {
            return Ok(());
        };
        tracing::warn!(
            id = self.id,
            "leader lost contact with a quorum: stepping down"
        );
        let _ = old.shutdown().await;
        // A restarted member whose saved vote says "committed leader of this
        // term" would take the leadership straight back. Keep the vote for
        // itself in this term (so it grants no one else this term) but drop
        // the claim that a quorum accepted it: it comes back a follower.
        let mut log = self.log.clone();
        let vote = openraft::storage::RaftLogStorage::read_vote(&mut log)
            .await
            .map_err(|e| RaftNodeError::Raft(e.to_string()))?;
        if let Some(v) = vote.filter(|v| v.committed && v.leader_id.node_id == self.id) {
            let demoted = crate::types::Vote::new(v.leader_id.term, self.id);
            openraft::storage::RaftLogStorage::save_vote(&mut log, &demoted)
                .await
                .map_err(|e| RaftNodeError::Raft(e.to_string()))?;
        }
        let new = self.new_raft().await?;
        let mut slot = self.raft.write();
        if self.stopped.load(Ordering::SeqCst) {
            // The member was shut down meanwhile: the new instance must not
            // outlive it (it would go on campaigning and leading).
            drop(slot);
            let _ = new.shutdown().await;
            return Ok(());
        }
        *slot = Some(new);
        Ok(())
    }
}

/// Runs on every member; acts while it is leader: steps down when a quorum
/// has not answered for an election timeout, and promotes learners that
/// have caught up.
async fn watchdog(inner: std::sync::Weak<Inner>) {
    // When this member became leader (term, time): a new leader has heard
    // from nobody yet and gets one election timeout to do so.
    let mut leading_since: Option<(u64, std::time::Instant)> = None;
    loop {
        let period = match inner.upgrade() {
            Some(i) => i.config.heartbeat,
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        let Ok(raft) = inner.raft() else { continue };
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            leading_since = None;
            continue;
        }
        let since = match leading_since {
            Some((term, at)) if term == m.current_term => at,
            _ => {
                let now = std::time::Instant::now();
                leading_since = Some((m.current_term, now));
                now
            }
        };
        if inner.transferring.load(Ordering::SeqCst) {
            continue;
        }
        let max = inner.oconfig.election_timeout_max;
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        let alone = voters == [inner.id];
        let settled = since.elapsed() > inner.election_max();
        let silent = m.millis_since_quorum_ack.is_none_or(|ms| ms > max);
        if !alone && settled && silent {
            leading_since = None;
            if let Err(e) = inner.step_down().await {
                tracing::error!(error = %e, "stepping down failed");
            }
            continue;
        }
        crate::membership::promote_caught_up(&inner, &raft, &m).await;
    }
}

/// A running raft member. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.inner.id)
            .field("addr", &self.inner.addr)
            .finish()
    }
}

/// A member's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This member's id.
    pub id: NodeId,
    /// Leader, follower, candidate or learner.
    pub state: ServerState,
    /// The leader it knows.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: u64,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Last applied index.
    pub last_applied: Option<u64>,
    /// Voting members and their addresses.
    pub voters: BTreeMap<NodeId, String>,
    /// Learners and their addresses.
    pub learners: BTreeMap<NodeId, String>,
    /// A membership change is under way (joint consensus): `voters` holds
    /// the old and the new voters, and until the change completes a
    /// quorum of each is needed to commit anything.
    pub changing: bool,
}

impl RaftNode {
    /// This member's raft id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The address others reach this member at.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The store this member applies to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The fault injection of this member's transport.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Group-commit counters of the log: entries written and
    /// `fdatasync`s done since the member started (their ratio is the
    /// group-commit factor).
    pub fn wal_stats(&self) -> WalStats {
        self.inner.log.stats()
    }

    /// How much of this member's log is on disk: what a power loss now
    /// would keep of the segment being appended to. For crash drills.
    pub fn wal_extent(&self) -> Option<WalExtent> {
        self.inner.log.extent()
    }

    /// Stops this member's log as a power loss would (see
    /// [`LogStore::cut_power`]); the member should be shut down next. For
    /// crash drills: with [`crate::testing::lose_unsynced`] on the extent
    /// returned, its disk then holds what a power loss would have left.
    pub fn cut_power(&self) -> Option<WalExtent> {
        self.inner.log.cut_power()
    }

    /// Counters of this member's proposer: store transactions proposed
    /// and the log entries they were merged into since the member
    /// started. With [`RaftNode::wal_stats`], transactions per
    /// `fdatasync` on the leader.
    pub fn proposal_stats(&self) -> ProposalStats {
        self.inner.queue.counters.snapshot()
    }

    /// The openraft handle (for metrics and advanced use).
    pub fn raft(&self) -> Result<Raft, RaftNodeError> {
        self.inner.raft()
    }

    /// Starts a new cluster with this member as its only voter. Does
    /// nothing if this member already belongs to a cluster.
    pub async fn bootstrap(&self) -> Result<(), RaftNodeError> {
        let raft = self.inner.raft()?;
        if raft
            .is_initialized()
            .await
            .map_err(|e| RaftNodeError::Raft(e.to_string()))?
        {
            return Ok(());
        }
        let members = BTreeMap::from([(
            self.inner.id,
            Member {
                addr: self.inner.addr.clone(),
            },
        )]);
        raft.initialize(members)
            .await
            .map_err(|e| RaftNodeError::Raft(e.to_string()))
    }

    /// This member's view of the cluster.
    pub fn status(&self) -> Result<Status, RaftNodeError> {
        let m = self.inner.raft()?.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let addr = |id: &NodeId| {
            membership
                .get_node(id)
                .map(|n| n.addr.clone())
                .unwrap_or_default()
        };
        Ok(Status {
            id: m.id,
            state: m.state,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            voters: membership.voter_ids().map(|id| (id, addr(&id))).collect(),
            learners: membership.learner_ids().map(|id| (id, addr(&id))).collect(),
            changing: membership.get_joint_config().len() > 1,
        })
    }

    /// True while this member is the leader.
    pub fn is_leader(&self) -> bool {
        // Read in place: the dispatcher asks on every heartbeat, and a full
        // `status()` copies the metrics and the membership.
        self.inner
            .raft()
            .is_ok_and(|r| r.metrics().borrow().state == ServerState::Leader)
    }

    /// Waits until some member is leader (as this member sees it), up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, RaftNodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Status {
                leader: Some(l), ..
            }) = self.status()
            {
                return Ok(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RaftNodeError::Timeout("no leader elected".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops this member (its log and snapshots stay on disk).
    pub async fn shutdown(&self) {
        // Before anything else: a step-down already under way must not put
        // a new raft instance in place after the one taken below.
        self.inner.stopped.store(true, Ordering::SeqCst);
        for t in self.inner.tasks.lock().drain(..) {
            t.abort();
        }
        let raft = self.inner.raft.write().take();
        if let Some(raft) = raft {
            let _ = raft.shutdown().await;
        }
        self.inner.log.flush();
    }
}
