//! Clusters of 3 and 5 managers in one process, over real loopback gRPC:
//! elections, leader loss during writes, quorum loss, restarts, membership
//! changes, snapshots for members that fell behind.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use parking_lot::Mutex;
use swarm_raft::RaftConfig;
use swarm_store::{ProposeError, StoreError};

/// Writers that keep writing through whichever manager leads, recording
/// every write that was acknowledged.
struct Writers {
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    count: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(cluster: &Arc<tokio::sync::RwLock<Cluster>>, n: usize) -> Writers {
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..n)
            .map(|w| {
                let (cluster, acked, stop, count) =
                    (cluster.clone(), acked.clone(), stop.clone(), count.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let (key, value) = (format!("w{w}-{}", i % 20), format!("{i}"));
                        let r = cluster.read().await.write(&key, &value).await;
                        if r.is_ok() {
                            acked.lock().insert(key, value);
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            i += 1;
                        } else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Writers {
            acked,
            count,
            stop,
            tasks,
        }
    }

    async fn stop(self) -> BTreeMap<String, String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.acked.lock().clone()
    }
}

async fn leader_killed_during_writes(n: usize) {
    let cluster = Arc::new(tokio::sync::RwLock::new(Cluster::start(n).await));
    let writers = Writers::start(&cluster, 4);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let old = cluster.read().await.leader().await;
    cluster.write().await.kill(old).await;
    let new = cluster.read().await.leader().await;
    assert_ne!(new, old);
    let acked_writes = || writers.count.load(std::sync::atomic::Ordering::SeqCst);
    let before = acked_writes();
    eventually("writes on the new leader", || async {
        (acked_writes() > before + 10).then_some(())
    })
    .await;
    let acked = writers.stop().await;
    cluster.write().await.restart(old).await;
    let c = cluster.read().await;
    let contents: BTreeMap<String, String> = c.converged().await.into_iter().collect();
    // Every acknowledged write is present, on every member (the last value
    // acknowledged for a key is the one kept: writers do not overlap keys).
    for (k, v) in &acked {
        assert_eq!(contents.get(k), Some(v), "acknowledged write {k}={v} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_survive_the_leader_dying_mid_write() {
    leader_killed_during_writes(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_managers_survive_the_leader_dying_mid_write() {
    leader_killed_during_writes(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_quorum_fails_writes_quickly_and_loses_nothing() {
    let mut c = Cluster::start(3).await;
    for i in 0..20 {
        c.write(&format!("k{i}"), "v").await.unwrap();
    }
    let leader = c.leader().await;
    let followers = c.followers(leader);
    for f in &followers {
        c.kill(*f).await;
    }
    let started = Instant::now();
    let err = put(&c.managers[&leader].store, "lost", "x")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < c.config.proposal_timeout + Duration::from_secs(2),
        "took {took:?}"
    );
    assert!(
        matches!(
            err,
            StoreError::Proposal(ProposeError::Unknown(_) | ProposeError::NotLeader(_))
        ),
        "a clear error: {err}"
    );
    // The lonely leader steps down (CheckQuorum).
    eventually("step down", || async {
        (!c.managers[&leader].node.is_leader()).then_some(())
    })
    .await;
    let err = put(&c.managers[&leader].store, "lost2", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Proposal(ProposeError::NotLeader(_))),
        "{err}"
    );
    for f in followers {
        c.restart(f).await;
    }
    c.leader().await;
    c.write("after", "v").await.unwrap();
    let contents = c.converged().await;
    for i in 0..20 {
        assert!(contents.iter().any(|(k, _)| k == &format!("k{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_all_at_once_and_one_by_one_keeps_state_terms_and_indexes() {
    let mut c = Cluster::start(3).await;
    for i in 0..30 {
        c.write(&format!("k{i}"), &i.to_string()).await.unwrap();
    }
    let before = c.converged().await;
    let marks: BTreeMap<_, _> = c
        .managers
        .iter()
        .map(|(id, m)| (*id, m.node.status().unwrap()))
        .collect();
    let ids: Vec<_> = c.managers.keys().copied().collect();
    for id in &ids {
        c.kill(*id).await;
    }
    for id in &ids {
        c.restart(*id).await;
    }
    c.leader().await;
    assert_eq!(c.converged().await, before);
    for (id, m) in &c.managers {
        let now = m.node.status().unwrap();
        assert!(now.term >= marks[id].term, "term went back on {id}");
        assert!(
            now.last_log_index >= marks[id].last_log_index,
            "index went back on {id}"
        );
    }
    // One by one, writing in between.
    for (n, id) in ids.iter().enumerate() {
        c.kill(*id).await;
        c.leader().await;
        c.write(&format!("rolling{n}"), "v").await.unwrap();
        c.restart(*id).await;
    }
    let after = c.converged().await;
    assert_eq!(after.len(), 33);
}

/// Removes `id` through `node`, retrying while the quorum rule refuses
/// because a just-added manager has not yet answered within the
/// reachability window (a transient state an operator would also retry).
async fn remove_when_reachable(node: &swarm_raft::RaftNode, id: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match node.remove(id).await {
            Ok(()) => return,
            Err(e) if e.to_string().contains("not a quorum") => {
                assert!(tokio::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("removing {id:x}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_under_write_load() {
    let cluster = Arc::new(tokio::sync::RwLock::new(Cluster::start(3).await));
    let writers = Writers::start(&cluster, 3);
    let new = cluster.write().await.add_manager().await;
    cluster.read().await.wait_voters(4).await;
    // Remove a follower other than the new one.
    {
        let c = cluster.read().await;
        let leader = c.leader().await;
        let victim = *c
            .managers
            .keys()
            .find(|id| **id != leader && **id != new)
            .unwrap();
        remove_when_reachable(&c.managers[&leader].node, victim).await;
        drop(c);
        cluster.write().await.kill(victim).await;
    }
    cluster.read().await.wait_voters(3).await;
    // The leader removes itself: leadership moves first.
    {
        let c = cluster.read().await;
        let leader = c.leader().await;
        remove_when_reachable(&c.managers[&leader].node, leader).await;
        drop(c);
        eventually("a new leader", || async {
            cluster.read().await.leader_now().filter(|l| *l != leader)
        })
        .await;
        cluster.write().await.kill(leader).await;
    }
    cluster.read().await.wait_voters(2).await;
    let acked = writers.stop().await;
    let c = cluster.read().await;
    let contents: BTreeMap<String, String> = c.converged().await.into_iter().collect();
    for (k, v) in &acked {
        assert_eq!(contents.get(k), Some(v), "acknowledged write {k}={v} lost");
    }
    // The last two: neither may go while the other is unreachable.
    let leader = c.leader().await;
    let other = *c.managers.keys().find(|id| **id != leader).unwrap();
    c.faults.isolate(other);
    tokio::time::sleep(c.config.election_timeout * 2).await;
    if c.managers[&leader].node.is_leader() {
        let err = c.managers[&leader].node.remove(other).await.unwrap_err();
        assert!(
            err.to_string().contains("quorum") || err.to_string().contains("leader"),
            "{err}"
        );
    }
    c.faults.heal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_that_never_answered_is_not_promoted() {
    // A manager admitted as a learner but not started yet (a joining
    // manager starts only once its join is answered): as a voter it would
    // hold every commit hostage, its own join's bookkeeping included.
    let c = Cluster::start(1).await;
    let leader = c.leader().await;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    drop(silent);
    let (id, _) = c.managers[&leader].node.join(&addr).await.unwrap();
    // The watchdog that promotes learners runs every heartbeat: give it
    // twenty chances, with a write committing after each.
    for i in 0..20 {
        tokio::time::sleep(c.config.heartbeat).await;
        c.write("after-join", &i.to_string()).await.unwrap();
        let s = c.managers[&leader].node.status().unwrap();
        assert!(s.learners.contains_key(&id), "round {i}: {s:?}");
        assert!(!s.voters.contains_key(&id), "round {i}: promoted: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_manager_cannot_be_removed() {
    let c = Cluster::start(1).await;
    let leader = c.leader().await;
    let err = c.managers[&leader].node.remove(leader).await.unwrap_err();
    assert!(err.to_string().contains("last manager"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_far_behind_catches_up_from_a_snapshot() {
    let config = RaftConfig {
        snapshot_interval: 40,
        keep_entries_after_snapshot: 5,
        ..RaftConfig::fast()
    };
    let c = Cluster::with_config(3, config).await;
    let leader = c.leader().await;
    let lagging = *c.managers.keys().find(|id| **id != leader).unwrap();
    c.faults.isolate(lagging);
    for i in 0..200 {
        c.write(&format!("k{}", i % 50), &i.to_string())
            .await
            .unwrap();
    }
    // The leader compacted past what the lagging member has.
    eventually("compaction", || async {
        let m = c.managers[&leader]
            .node
            .raft()
            .ok()?
            .metrics()
            .borrow()
            .clone();
        m.purged.filter(|p| p.index > 100).map(drop)
    })
    .await;
    c.faults.heal();
    let contents = c.converged().await;
    assert_eq!(contents.len(), 50);
    let m = c.managers[&lagging]
        .node
        .raft()
        .unwrap()
        .metrics()
        .borrow()
        .clone();
    assert!(
        m.snapshot.is_some_and(|s| s.index > 100),
        "caught up through a snapshot: {:?}",
        m.snapshot
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_member_cannot_disrupt_elections() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let removed = *c.managers.keys().find(|id| **id != leader).unwrap();
    c.managers[&leader].node.remove(removed).await.unwrap();
    c.wait_voters(2).await;
    let term = c.managers[&leader].node.status().unwrap().term;
    // The removed member keeps running, times out and campaigns.
    tokio::time::sleep(c.config.election_timeout * 6).await;
    let s = c.managers[&leader].node.status().unwrap();
    assert_eq!(s.leader, Some(leader), "leadership unchanged");
    assert_eq!(s.term, term, "no term inflation from the removed member");
    c.write("still", "works").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_answer_not_leader_with_the_leaders_address() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let follower = c.managers.keys().copied().find(|id| *id != leader).unwrap();
    let err = put(&c.managers[&follower].store, "x", "y")
        .await
        .unwrap_err();
    match err {
        StoreError::Proposal(ProposeError::NotLeader(Some(hint))) => {
            assert_eq!(hint.id, leader);
            assert_eq!(hint.addr, c.managers[&leader].addr);
        }
        other => panic!("expected NotLeader with a hint, got {other}"),
    }
    // Oversized proposals are refused before they are proposed.
    let big = "x".repeat(2 * 1024 * 1024);
    let err = put(&c.managers[&leader].store, "big", &big)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Proposal(ProposeError::TooLarge { .. })),
        "{err}"
    );
    // Linearizable read: after the barrier the leader has applied every
    // committed write.
    c.write("r", "1").await.unwrap();
    c.managers[&leader].node.read_barrier().await.unwrap();
    assert_eq!(get(&c.managers[&leader].store, "r").as_deref(), Some("1"));
    assert!(matches!(
        c.managers[&follower].node.read_barrier().await,
        Err(ProposeError::NotLeader(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_can_be_handed_over() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let target = *c.managers.keys().find(|id| **id != leader).unwrap();
    let new = c.managers[&leader]
        .node
        .transfer_leadership(Some(target))
        .await
        .unwrap();
    assert_ne!(new, leader);
    let agreed = c.leader().await;
    assert_ne!(agreed, leader);
    c.write("after-transfer", "v").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_new_cluster_restarts_from_one_survivor() {
    let mut c = Cluster::start(3).await;
    for i in 0..25 {
        c.write(&format!("k{i}"), "v").await.unwrap();
    }
    let data = c.converged().await;
    let ids: Vec<_> = c.managers.keys().copied().collect();
    for id in &ids {
        c.kill(*id).await;
    }
    // Two managers are lost for good; the third starts a new cluster.
    let survivor = ids[0];
    let (addr, dir) = c.stopped.get(&survivor).cloned().unwrap();
    swarm_raft::RaftNode::force_new_cluster(&dir, survivor, &addr).unwrap();
    c.restart(survivor).await;
    let leader = c.leader().await;
    assert_eq!(leader, survivor);
    assert_eq!(c.managers[&survivor].node.status().unwrap().voters.len(), 1);
    assert_eq!(dump(&c.managers[&survivor].store), data);
    c.write("new-era", "v").await.unwrap();
}
