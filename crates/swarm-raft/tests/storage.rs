//! The log storage conformance suite and openraft's own storage suite, run
//! against our write-ahead log and state machine.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

use openraft::testing::{StoreBuilder, Suite};
use swarm_raft::testing::{OpenraftSuiteBuilder, WalLogFactory, block_on, run_log_suite};
use swarm_raft::{LogStore, StateMachine, TypeConfig};

type S = Suite<
    TypeConfig,
    LogStore,
    StateMachine,
    OpenraftSuiteBuilder,
    std::sync::Arc<swarm_raft::testing::ScratchDir>,
>;

#[test]
fn our_wal_passes_the_log_conformance_suite() {
    block_on(run_log_suite(&WalLogFactory));
}

macro_rules! openraft_case {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                block_on(async {
                    let (_dir, log, sm) = OpenraftSuiteBuilder.build().await.unwrap();
                    S::$name(log, sm).await.unwrap();
                });
            }
        )*
    };
}

/// Every case of openraft's suite except
/// `get_initial_state_membership_from_log_and_sm`, which appends index 3
/// right after index 1: a log with a hole, which raft never writes and our
/// log refuses on purpose (`our_wal_passes_the_log_conformance_suite`
/// checks that refusal).
mod openraft_suite {
    use super::*;
    openraft_case!(
        last_membership_in_log_initial,
        last_membership_in_log,
        last_membership_in_log_multi_step,
        get_membership_initial,
        get_membership_from_log_and_empty_sm,
        get_membership_from_empty_log_and_sm,
        get_membership_from_log_le_sm_last_applied,
        get_membership_from_log_gt_sm_last_applied_1,
        get_membership_from_log_gt_sm_last_applied_2,
        get_initial_state_without_init,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_log_ids,
        get_initial_state_re_apply_committed,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        try_get_log_entry,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_since_11,
        delete_logs_since_0,
        append_to_log,
        snapshot_meta,
        apply_single,
        apply_multiple,
    );
}
