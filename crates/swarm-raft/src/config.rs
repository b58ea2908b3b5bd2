//! Timing and sizing of a raft member.

use std::time::Duration;

use swarm_api::defaults;

/// How a member times its elections and heartbeats, and when it compacts.
///
/// The defaults follow SwarmKit: a 1 s tick, heartbeats every tick, an
/// election after 10 ticks without a leader, a snapshot every 10,000
/// entries keeping 500 for slow followers, proposals up to 1.5 MB; and, as
/// SwarmKit's CheckQuorum, a leader that has not heard from a quorum for an
/// election timeout steps down.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// Leader heartbeat period.
    pub heartbeat: Duration,
    /// Shortest election timeout (the longest is 1.5x this).
    pub election_timeout: Duration,
    /// Entries between snapshots.
    pub snapshot_interval: u64,
    /// Entries kept behind a snapshot for slow followers.
    pub keep_entries_after_snapshot: u64,
    /// Snapshot files kept.
    pub keep_snapshots: usize,
    /// Largest snapshot chunk sent in one message.
    pub snapshot_chunk_bytes: u64,
    /// Largest proposal accepted.
    pub max_proposal_bytes: usize,
    /// How long a write waits to commit before its outcome is reported
    /// unknown.
    pub proposal_timeout: Duration,
    /// A learner within this many entries of the leader is promoted to voter.
    pub promote_within: u64,
    /// Segment size of the write-ahead log (each segment's space is
    /// allocated when it is created).
    pub max_segment_bytes: u64,
    /// Log entries the proposer keeps in flight at once; transactions
    /// that arrive meanwhile wait and share the next entry.
    pub proposals_in_flight: usize,
    /// Most store transactions merged into one log entry (1: never
    /// merge). Merging is what lets a leader commit many writes per
    /// `fdatasync` (each entry is one round of replication).
    pub max_merged_proposals: usize,
}

impl Default for RaftConfig {
    fn default() -> Self {
        let tick = defaults::RAFT_TICK;
        RaftConfig {
            heartbeat: tick * defaults::RAFT_HEARTBEAT_TICK,
            election_timeout: tick * defaults::RAFT_ELECTION_TICK,
            snapshot_interval: defaults::RAFT_SNAPSHOT_INTERVAL,
            keep_entries_after_snapshot: defaults::RAFT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
            keep_snapshots: 1,
            snapshot_chunk_bytes: 1024 * 1024,
            max_proposal_bytes: defaults::MAX_PROPOSAL_BYTES,
            proposal_timeout: Duration::from_secs(20),
            promote_within: 100,
            max_segment_bytes: 64 * 1024 * 1024,
            proposals_in_flight: 4,
            max_merged_proposals: 1024,
        }
    }
}

impl RaftConfig {
    /// Short timings for tests and local demos (a 50 ms heartbeat, an
    /// election after 500 ms) and 4 MB log segments (less disk set aside
    /// per member), otherwise the defaults.
    pub fn fast() -> Self {
        RaftConfig {
            heartbeat: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            proposal_timeout: Duration::from_secs(5),
            max_segment_bytes: 4 * 1024 * 1024,
            ..RaftConfig::default()
        }
    }

    pub(crate) fn openraft(&self, cluster: &str) -> Result<openraft::Config, String> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let min = ms(self.election_timeout);
        openraft::Config {
            cluster_name: cluster.to_string(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: min,
            election_timeout_max: min + min / 2,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_interval),
            max_in_snapshot_log_to_keep: self.keep_entries_after_snapshot,
            snapshot_max_chunk_size: self.snapshot_chunk_bytes,
            max_payload_entries: 500,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| e.to_string())
    }
}
