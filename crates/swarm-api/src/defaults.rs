//! The defaults swarm-rs shares with SwarmKit, in one place, and the
//! functions that fill a spec's unset fields with them.
//!
//! Users moving from Docker swarm see the same behaviour: a service without
//! a restart policy restarts on any exit after 5 s, an update replaces one
//! task at a time and pauses on failure, and so on.

use std::time::Duration as StdDuration;

use crate::v1::{
    Duration, FailureAction, RestartCondition, RestartPolicy, TaskSpec, UpdateConfig, UpdateOrder,
};

/// Period at which agents heartbeat.
pub const HEARTBEAT_PERIOD: StdDuration = StdDuration::from_secs(5);
/// A node is marked down after this many missed heartbeat periods.
pub const HEARTBEAT_GRACE_MULTIPLIER: u32 = 3;
/// Delay before a task is restarted.
pub const RESTART_DELAY: StdDuration = StdDuration::from_secs(5);
/// Tasks updated at once.
pub const UPDATE_PARALLELISM: u64 = 1;
/// How long an updated task is watched for failure.
pub const UPDATE_MONITOR: StdDuration = StdDuration::from_secs(5);
/// Terminated tasks kept per slot.
pub const TASK_HISTORY_RETENTION: i64 = 5;
/// Grace period between the stop signal and a kill.
pub const STOP_GRACE_PERIOD: StdDuration = StdDuration::from_secs(10);
/// Signal sent to stop a task.
pub const STOP_SIGNAL: &str = "SIGTERM";
/// Range of ingress published ports picked by the manager.
pub const INGRESS_PORT_RANGE: std::ops::RangeInclusive<u32> = 30000..=32767;
/// Pool overlay subnets are carved from.
pub const ADDRESS_POOL: &str = "10.0.0.0/8";
/// Prefix length of overlay subnets from the pool.
pub const SUBNET_SIZE: u8 = 24;
/// First VXLAN network identifier handed out.
pub const VXLAN_FIRST_VNI: u32 = 4096;
/// UDP port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// MTU of overlay interfaces.
pub const OVERLAY_MTU: u32 = 1450;
/// Validity of node certificates.
pub const NODE_CERT_EXPIRY: StdDuration = StdDuration::from_secs(90 * 24 * 3600);
/// Shortest node certificate validity accepted.
pub const MIN_NODE_CERT_EXPIRY: StdDuration = StdDuration::from_secs(3600);
/// Validity of a generated root CA (20 years).
pub const ROOT_CA_EXPIRY: StdDuration = StdDuration::from_secs(20 * 365 * 24 * 3600);
/// A node renews its certificate at a random point in this fraction of its life.
pub const CERT_RENEWAL_WINDOW: (f64, f64) = (0.5, 0.8);
/// Log entries between raft snapshots.
pub const RAFT_SNAPSHOT_INTERVAL: u64 = 10_000;
/// Entries kept after a snapshot for slow followers.
pub const RAFT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS: u64 = 500;
/// Raft tick.
pub const RAFT_TICK: StdDuration = StdDuration::from_secs(1);
/// Ticks without a leader before an election.
pub const RAFT_ELECTION_TICK: u32 = 10;
/// Ticks between leader heartbeats.
pub const RAFT_HEARTBEAT_TICK: u32 = 1;
/// Largest proposal the raft log accepts (1.5 MB, like SwarmKit).
pub const MAX_PROPOSAL_BYTES: usize = 1_572_864;
/// Largest secret.
pub const MAX_SECRET_BYTES: usize = 500 * 1024;
/// Largest config.
pub const MAX_CONFIG_BYTES: usize = 1000 * 1024;
/// Largest replica count accepted in a spec.
pub const MAX_REPLICAS: u64 = 1_000_000;
/// Longest object name (a DNS label).
pub const MAX_NAME_LEN: usize = 63;
/// Name of the one cluster object.
pub const CLUSTER_NAME: &str = "default";

/// The restart policy in force for a task spec: the spec's own, or the
/// default (condition any, delay 5 s, unlimited attempts) when unset.
pub fn restart_policy(spec: &TaskSpec) -> RestartPolicy {
    spec.restart.unwrap_or_else(|| RestartPolicy {
        condition: RestartCondition::Any.into(),
        delay: Some(RESTART_DELAY.into()),
        max_attempts: 0,
        window: Some(Duration::from_secs(0)),
    })
}

/// The update (or rollback) config in force: the spec's own or SwarmKit's
/// default (parallelism 1, no delay, pause on failure, monitor 5 s, failure
/// ratio 0, stop-first).
pub fn update_config(config: Option<&UpdateConfig>) -> UpdateConfig {
    config.cloned().unwrap_or_else(|| UpdateConfig {
        parallelism: UPDATE_PARALLELISM,
        delay: Some(Duration::from_secs(0)),
        failure_action: FailureAction::Pause.into(),
        monitor: Some(UPDATE_MONITOR.into()),
        max_failure_ratio: 0.0,
        order: UpdateOrder::StopFirst.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_policies_take_swarmkit_defaults() {
        let p = restart_policy(&TaskSpec::default());
        assert_eq!(p.condition(), RestartCondition::Any);
        assert_eq!(
            p.delay.unwrap().to_std().unwrap(),
            StdDuration::from_secs(5)
        );
        let u = update_config(None);
        assert_eq!(u.parallelism, 1);
        assert_eq!(u.failure_action(), FailureAction::Pause);
        assert_eq!(u.order(), UpdateOrder::StopFirst);
        assert_eq!(
            u.monitor.unwrap().to_std().unwrap(),
            StdDuration::from_secs(5)
        );
    }

    #[test]
    fn set_policies_are_kept() {
        let spec = TaskSpec {
            restart: Some(RestartPolicy {
                condition: RestartCondition::None.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(restart_policy(&spec).condition(), RestartCondition::None);
    }
}
