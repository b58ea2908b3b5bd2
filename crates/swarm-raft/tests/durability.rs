//! The leader reports its appends before syncing them, so that its fsync
//! and the followers' run at once; nothing may be seen before the leader's
//! own sync is done. A slow disk on the leader makes the window wide.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::{Arc, Mutex};
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

/// The whole quorum loses power while the leader's log runs ahead of its
/// disk: every answered write must be there after the restart, served by
/// a quorum that only the leader's disk can have given it. And the
/// follower that holds entries the leader lost must give them up: the
/// restarted leader may lead again only in a new term (in the same one,
/// its new entries would take the lost ones' log ids, and that follower
/// applied its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_keeps_every_answered_write() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let followers = c.followers(leader);
    let (f1, f2) = (followers[0], followers[1]);
    c.write("warm", "up").await.unwrap();
    c.converged().await;
    // With f2 stopped, the leader and f1 are the quorum: an answered write
    // must be on both disks.
    c.kill(f2).await;
    c.faults.slow_sync(leader, Some(Duration::from_millis(30)));

    let answered = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = c.managers[&leader].store.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                for j in 0.. {
                    let key = format!("w{i}-{j}");
                    if put(&store, &key, "v").await.is_err() {
                        return;
                    }
                    answered.lock().unwrap().push(key);
                }
            })
        })
        .collect();
    common::eventually("writes answered", || async {
        (answered.lock().unwrap().len() >= 50).then_some(())
    })
    .await;

    // Now the leader's disk stalls: it goes on appending (f1 syncs those
    // entries, and the leader's engine counts them committed) but no
    // later sync of its own finishes. Wait for syncs already sleeping
    // with the short delay to end, then for unsynced appends.
    c.faults.slow_sync(leader, Some(Duration::from_secs(120)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::eventually("appends past the leader's last sync", || async {
        let e = c.managers[&leader].node.wal_extent()?;
        (e.written > e.synced).then_some(())
    })
    .await;
    let lost = c.power_cut(leader).await;
    c.power_cut(f1).await;
    for w in writers {
        w.abort();
    }
    c.faults.slow_sync(leader, None);
    assert!(
        lost > 0,
        "the leader's log should have lost its unsynced tail"
    );
    let answered = answered.lock().unwrap().clone();

    // The old leader and f2 are a quorum; f1, which holds entries the
    // leader lost, stays down.
    c.restart(leader).await;
    c.restart(f2).await;
    c.leader().await;
    c.write("after", "cut").await.unwrap();
    let contents = c.converged().await;
    let missing: Vec<_> = answered
        .iter()
        .filter(|k| !contents.contains(&(k.to_string(), "v".to_string())))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered writes lost with the leader's unsynced tail ({lost} bytes): {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );

    // f1 comes back with entries nobody was told about: they give way to
    // the new term's.
    c.restart(f1).await;
    let all = c.converged().await;
    assert_eq!(
        all, contents,
        "f1 rejoined with a different state than the quorum's"
    );
}
