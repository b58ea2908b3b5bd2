//! Snapshot files damaged while their manager is down: a flipped bit
//! anywhere in the file stops the start with the file named (its data is
//! never used); a partial file left by a crash while a snapshot was being
//! written is ignored and removed, and the manager comes back from its
//! previous snapshot and its log.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use swarm_raft::{NodeId, RaftConfig};

/// Snapshot files of a manager directory, oldest first.
fn snapshot_files(manager_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(manager_dir.join("snapshots")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    files.sort();
    files
}

/// A 3-manager cluster that snapshots every 20 entries, 60 writes in, and
/// a follower that holds a snapshot, stopped once it applied everything.
async fn cluster_with_a_stopped_follower() -> (Cluster, NodeId, PathBuf, Vec<(String, String)>) {
    init_logs();
    let config = RaftConfig {
        snapshot_interval: 20,
        ..RaftConfig::fast()
    };
    let mut c = Cluster::with_config(3, config).await;
    for i in 0..60 {
        c.write(&format!("k{}", i % 15), &i.to_string())
            .await
            .unwrap();
    }
    let leader = c.leader().await;
    let follower = *c.managers.keys().find(|id| **id != leader).unwrap();
    let dir = c.managers[&follower].dir.clone();
    eventually("a snapshot on the follower", || async {
        (!snapshot_files(&dir).is_empty()).then_some(())
    })
    .await;
    let contents = c.converged().await;
    // Let the follower's lazily saved committed position catch up, so that
    // on restart it can replay its own log without anyone's help.
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.kill(follower).await;
    (c, follower, dir, contents)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flipped_bit_in_a_snapshot_refuses_the_start_and_names_the_file() {
    let (mut c, follower, dir, contents) = cluster_with_a_stopped_follower().await;
    let file = snapshot_files(&dir).pop().unwrap();
    let good = std::fs::read(&file).unwrap();
    // A digit of the index in the metadata (the header still parses: only
    // the checksum can tell), a bit in the middle, and the last bit of the
    // store data.
    let index_digit = good.windows(8).position(|w| w == b"\"index\":").unwrap() + 8;
    assert!(good[index_digit].is_ascii_digit());
    for (at, bit) in [
        (index_digit, 0x01),
        (good.len() / 2, 0x04),
        (good.len() - 1, 0x80),
    ] {
        let mut bad = good.clone();
        bad[at] ^= bit;
        std::fs::write(&file, &bad).unwrap();
        let err = c.try_restart(follower).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("corrupt snapshot") && text.contains(&file.display().to_string()),
            "byte {at}: {text}"
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bad,
            "the damaged file is left for an operator to inspect"
        );
    }
    // Repaired, the member starts and catches up.
    std::fs::write(&file, &good).unwrap();
    c.try_restart(follower).await.unwrap();
    assert_eq!(c.converged().await, contents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partial_snapshot_left_by_a_crash_is_ignored() {
    let (mut c, follower, dir, contents) = cluster_with_a_stopped_follower().await;
    let previous = snapshot_files(&dir);
    let newest = previous.last().unwrap().clone();
    // A crash half way through writing a newer snapshot: the temporary
    // file holds the first half of a (would-be) snapshot.
    let bytes = std::fs::read(&newest).unwrap();
    let partial = dir
        .join("snapshots")
        .join("00000000000099999999-9-crashed.snap.tmp");
    std::fs::write(&partial, &bytes[..bytes.len() / 2]).unwrap();

    // Cut off from the others, it can only rebuild its state from its own
    // snapshot and log.
    c.faults.isolate(follower);
    c.try_restart(follower).await.unwrap();
    assert!(!partial.exists(), "the partial snapshot is removed");
    assert_eq!(snapshot_files(&dir), previous);
    let store = c.managers[&follower].store.clone();
    eventually("state from the snapshot and the log", || async {
        (dump(&store) == contents).then_some(())
    })
    .await;

    c.faults.heal();
    c.write("after", "restart").await.unwrap();
    let all = c.converged().await;
    assert!(all.contains(&("after".to_string(), "restart".to_string())));
}
