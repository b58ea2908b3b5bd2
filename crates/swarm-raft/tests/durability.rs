//! The leader reports its appends before syncing them, so that its fsync
//! and the followers' run at once; nothing may be seen before the leader's
//! own sync is done. A slow disk on the leader makes the window wide.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{Cluster, get, put};
use tokio::time::Instant;

/// How long the leader's background syncs take in these tests.
const SLOW: Duration = Duration::from_millis(1_500);
/// How long the tests watch, well inside [`SLOW`]: the leader's sync
/// cannot end earlier, since the delay comes before the `fdatasync`.
const WATCH: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_neither_applied_nor_answered_before_the_leaders_sync() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.write("warm", "up").await.unwrap();
    c.converged().await;
    let before = c.managers[&leader]
        .node
        .status()
        .unwrap()
        .last_log_index
        .unwrap();

    c.faults.slow_sync(leader, Some(SLOW));
    let store = c.managers[&leader].store.clone();
    let started = Instant::now();
    let write = tokio::spawn(async move { put(&store, "k", "v").await });

    // The followers get the entry and sync it (the leader counts itself
    // at once, so for its engine the entry is committed)...
    common::eventually("the entry in every follower's log", || async {
        c.managers
            .iter()
            .filter(|(id, _)| **id != leader)
            .all(|(_, m)| m.node.status().unwrap().last_log_index > Some(before))
            .then_some(())
    })
    .await;
    assert!(
        started.elapsed() < WATCH,
        "replication should not wait for the leader's slow sync"
    );
    // ...but until the leader's own log has it on disk, no member applies
    // it and its writer is not answered.
    while started.elapsed() < WATCH {
        for (id, m) in &c.managers {
            let applied = m.node.status().unwrap().last_applied;
            assert!(
                applied <= Some(before),
                "member {id} applied index {applied:?} before the leader synced it"
            );
            assert_eq!(get(&m.store, "k"), None, "member {id} shows the write");
        }
        assert!(
            !write.is_finished(),
            "the writer was answered before the leader's log synced the write"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    c.faults.slow_sync(leader, None);
    write.await.unwrap().unwrap();
    assert!(
        started.elapsed() >= SLOW,
        "answered after {:?}, before the leader's sync could end",
        started.elapsed()
    );
    let all = c.converged().await;
    assert!(all.contains(&("k".to_string(), "v".to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_during_a_slow_sync_share_the_next_one() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.write("warm", "up").await.unwrap();
    c.converged().await;
    let before = c.managers[&leader].node.wal_stats();

    c.faults.slow_sync(leader, Some(Duration::from_millis(300)));
    let writers: Vec<_> = (0..20)
        .map(|i| {
            let store = c.managers[&leader].store.clone();
            tokio::spawn(async move {
                for j in 0..3 {
                    put(&store, &format!("w{i}"), &format!("{j}"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    c.faults.slow_sync(leader, None);

    let stats = c.managers[&leader].node.wal_stats();
    let (entries, syncs) = (stats.entries - before.entries, stats.syncs - before.syncs);
    // The proposer keeps 4 entries in flight: those appended while a sync
    // sleeps share the next one (a sync per append would make these equal).
    assert!(
        syncs > 0 && syncs < entries,
        "{entries} entries and {syncs} syncs of the leader's log: appends made during a sync should share the next"
    );
    let all = c.converged().await;
    for i in 0..20 {
        assert!(all.contains(&(format!("w{i}"), "2".to_string())));
    }
}
