//! The proposer merges transactions that wait at the same time into one
//! log entry; when a merged entry is refused, each transaction still gets
//! its own verdict.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

mod common;

use std::time::Duration;

use common::*;
use swarm_api::v1::{Annotations, Config, ConfigSpec};
use swarm_raft::RaftConfig;
use swarm_store::{Store, StoreError};

async fn create(store: &Store, key: &str, value: &str) -> Result<u64, StoreError> {
    store
        .update(|tx| {
            tx.create(Config {
                id: key.into(),
                spec: Some(ConfigSpec {
                    annotations: Some(Annotations {
                        name: key.into(),
                        ..Default::default()
                    }),
                    data: value.as_bytes().to_vec(),
                }),
                ..Default::default()
            })
            .map(|c| c.meta.as_ref().map_or(0, |m| m.version))
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_transactions_share_an_entry_and_a_refused_one_fails_alone() {
    init_logs();
    let config = RaftConfig {
        proposals_in_flight: 1,
        ..RaftConfig::fast()
    };
    let c = Cluster::with_config(3, config).await;
    let leader = c.leader().await;
    let (node, store) = {
        let m = &c.managers[&leader];
        (m.node.clone(), m.store.clone())
    };
    // Slower replication (within the heartbeat, which is also openraft's
    // time limit for a message): while the first entry commits, the others
    // queue.
    c.faults.delay(Some(Duration::from_millis(30)));

    // 40 transactions at once, all good: they share entries (and so
    // versions: a version is the log index of the entry).
    let before = node.proposal_stats();
    let results = run_all(&store, (0..40).map(|i| format!("k{i}")).collect()).await;
    let after = node.proposal_stats();
    let mut versions: Vec<u64> = results.into_iter().map(|(_, r)| r.unwrap()).collect();
    let transactions = after.transactions - before.transactions;
    let entries = after.entries - before.entries;
    assert_eq!(transactions, 40);
    assert!(
        entries < 10,
        "{entries} entries for {transactions} transactions"
    );
    versions.sort_unstable();
    versions.dedup();
    assert!(versions.len() < 10, "{versions:?}");

    // 10 creations of the same object among 10 good ones: the merged entry
    // is refused, and each transaction gets its own verdict.
    let keys = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                "dup".to_string()
            } else {
                format!("j{i}")
            }
        })
        .collect();
    let results = run_all(&store, keys).await;
    let after_dups = node.proposal_stats();
    let mut dup_won = 0;
    for (key, r) in results {
        match (key.as_str(), r) {
            ("dup", Ok(_)) => dup_won += 1,
            ("dup", Err(e)) => assert!(e.is_definite_failure(), "{e}"),
            (_, Ok(_)) => {}
            (k, Err(e)) => panic!("{k} refused: {e}"),
        }
    }
    assert_eq!(dup_won, 1);
    assert!(
        after_dups.splits > after.splits,
        "the refused entry was split"
    );
    c.faults.delay(None);
    assert_eq!(c.converged().await.len(), 40 + 1 + 10);
}

/// Creates every key at once; returns each key with its outcome.
async fn run_all(store: &Store, keys: Vec<String>) -> Vec<(String, Result<u64, StoreError>)> {
    let tasks: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let store = store.clone();
            tokio::spawn(async move {
                let r = create(&store, &key, "v").await;
                (key, r)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
