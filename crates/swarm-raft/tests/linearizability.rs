//! Concurrent clients read, write and compare-and-set a few registers
//! through three managers while leaders are killed and the network is
//! partitioned; the recorded history (with "outcome unknown" for writes
//! that timed out or were cut off) must be linearizable.
//!
//! Reads go through the read index ([`RaftNode::read_barrier`]); writes are
//! store transactions through the raft proposer; a compare-and-set reads
//! after a read barrier and proposes a write conditioned on the version it
//! saw. Operations that certainly failed (not the leader, a refused
//! precondition, no quorum to confirm a read) are left out of the history.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests"
)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use swarm_api::v1::{Annotations, Config, ConfigSpec};
use swarm_raft::testing::history::{History, Pending};
use swarm_raft::testing::linearizable::{self, Call, Op, Ret, Value, Violation};
use swarm_raft::{NodeId, RaftNode};
use swarm_store::{ProposeError, Store, StoreError};
use tokio::sync::RwLock;

const KEYS: [&str; 3] = ["reg-a", "reg-b", "reg-c"];
const CLIENTS: u64 = 6;

fn value_of(store: &Store, key: &str) -> Option<Value> {
    get(store, key).map(|s| s.parse().expect("registers hold numbers"))
}

/// Sets `key` to `value` if it holds `expect`; `Ok(false)` if it does not.
async fn compare_and_set(
    store: &Store,
    key: &str,
    expect: Option<Value>,
    value: Value,
) -> Result<bool, StoreError> {
    store
        .update(|tx| {
            let current = tx.get::<Config>(key);
            let held = current.as_ref().map(|c| {
                String::from_utf8_lossy(&c.spec.as_ref().unwrap().data)
                    .parse()
                    .unwrap()
            });
            if held != expect {
                return Ok(false);
            }
            let obj = Config {
                id: key.into(),
                meta: current.and_then(|c| c.meta),
                spec: Some(ConfigSpec {
                    annotations: Some(Annotations {
                        name: key.into(),
                        ..Default::default()
                    }),
                    data: value.to_string().into_bytes(),
                }),
            };
            if obj.meta.is_some() {
                tx.update(obj)?;
            } else {
                tx.create(obj)?;
            }
            Ok(true)
        })
        .await
}

/// Where a client sends its next operation.
enum Next {
    Stay,
    Leader(NodeId),
    Elsewhere,
}

/// Records the end of an operation whose store call failed.
fn failed_write(op: Pending, e: &StoreError) -> Next {
    match e {
        StoreError::Proposal(ProposeError::NotLeader(hint)) => {
            op.failed();
            hint.as_ref()
                .map_or(Next::Elsewhere, |h| Next::Leader(h.id))
        }
        e if e.is_definite_failure() => {
            op.failed();
            Next::Stay
        }
        _ => {
            op.unknown();
            Next::Elsewhere
        }
    }
}

/// A barrier that failed: nothing was written, nothing is learnt.
fn failed_barrier(op: Pending, e: &ProposeError) -> Next {
    op.failed();
    match e {
        ProposeError::NotLeader(Some(h)) => Next::Leader(h.id),
        _ => Next::Elsewhere,
    }
}

async fn client(id: u64, cluster: Arc<RwLock<Cluster>>, history: History, stop: Arc<AtomicBool>) {
    let mut rng = StdRng::seed_from_u64(id);
    let mut target: Option<NodeId> = None;
    let mut seen: HashMap<&str, Option<Value>> = HashMap::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let (node, store): (RaftNode, Store) = {
            let c = cluster.read().await;
            let id = match target.filter(|t| c.managers.contains_key(t)) {
                Some(t) => t,
                None => {
                    let ids: Vec<NodeId> = c.managers.keys().copied().collect();
                    ids[rng.random_range(0..ids.len())]
                }
            };
            target = Some(id);
            let m = &c.managers[&id];
            (m.node.clone(), m.store.clone())
        };
        let key = KEYS[rng.random_range(0..KEYS.len())];
        n += 1;
        let value = id * 1_000_000 + n;
        let next = match rng.random_range(0..10) {
            0..4 => {
                let op = history.invoke(key, Call::Read);
                match node.read_barrier().await {
                    Ok(()) => {
                        let v = value_of(&store, key);
                        seen.insert(key, v);
                        op.returned(Ret::Read(v));
                        Next::Stay
                    }
                    Err(e) => failed_barrier(op, &e),
                }
            }
            4..7 => {
                let op = history.invoke(key, Call::Write(value));
                match put(&store, key, &value.to_string()).await {
                    Ok(()) => {
                        op.returned(Ret::Written);
                        Next::Stay
                    }
                    Err(e) => failed_write(op, &e),
                }
            }
            _ => {
                let expect = seen.get(key).copied().flatten();
                let op = history.invoke(key, Call::Cas { expect, new: value });
                match node.read_barrier().await {
                    Err(e) => failed_barrier(op, &e),
                    Ok(()) => match compare_and_set(&store, key, expect, value).await {
                        Ok(done) => {
                            op.returned(Ret::Cas(done));
                            Next::Stay
                        }
                        Err(e) => failed_write(op, &e),
                    },
                }
            }
        };
        match next {
            Next::Stay => {}
            Next::Leader(l) => target = Some(l),
            Next::Elsewhere => {
                target = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Waits until the running managers agree on a leader.
async fn settle(cluster: &RwLock<Cluster>) -> NodeId {
    cluster.read().await.leader().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_register_workload_through_leader_kills_and_partitions_is_linearizable() {
    let started = Instant::now();
    let cluster = Arc::new(RwLock::new(Cluster::start(3).await));
    let history = History::new();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|id| tokio::spawn(client(id, cluster.clone(), history.clone(), stop.clone())))
        .collect();
    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
    let completed = || {
        history
            .ops()
            .iter()
            .filter(|o| o.returned.is_some())
            .count()
    };

    pause(1_500).await;
    let mut faults = Vec::new();

    // 1. The leader dies abruptly mid-workload, and comes back later.
    let leader = settle(&cluster).await;
    cluster.write().await.kill(leader).await;
    faults.push((format!("killed leader {leader:x}"), completed()));
    settle(&cluster).await;
    pause(1_500).await;
    cluster.write().await.restart(leader).await;
    pause(1_000).await;

    // 2. The leader is cut off from everyone (it keeps taking requests
    //    until it notices and steps down), then the network heals.
    let leader = settle(&cluster).await;
    let faults_handle = cluster.read().await.faults.clone();
    faults_handle.isolate(leader);
    faults.push((format!("isolated leader {leader:x}"), completed()));
    pause(2_500).await;
    faults_handle.heal();
    settle(&cluster).await;
    pause(1_000).await;

    // 3. A partial partition: the leader loses one follower only.
    let leader = settle(&cluster).await;
    let follower = {
        let c = cluster.read().await;
        *c.managers.keys().find(|id| **id != leader).unwrap()
    };
    faults_handle.cut(leader, follower);
    faults.push((format!("cut {leader:x} from {follower:x}"), completed()));
    pause(2_000).await;
    faults_handle.heal();
    pause(1_000).await;

    // 4. The leader is isolated and then killed while cut off.
    let leader = settle(&cluster).await;
    faults_handle.isolate(leader);
    faults.push((format!("isolated then killed {leader:x}"), completed()));
    pause(800).await;
    cluster.write().await.kill(leader).await;
    faults_handle.heal();
    settle(&cluster).await;
    pause(1_000).await;
    cluster.write().await.restart(leader).await;
    settle(&cluster).await;
    pause(1_500).await;

    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    // Final reads through the leader settle what the unknown writes did.
    {
        let c = cluster.read().await;
        let leader = c.leader().await;
        let m = &c.managers[&leader];
        for key in KEYS {
            let op = history.invoke(key, Call::Read);
            m.node.read_barrier().await.unwrap();
            op.returned(Ret::Read(value_of(&m.store, key)));
        }
        c.converged().await;
    }

    let ops = history.ops();
    let done = |f: fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
    let unknown = done(|o| o.returned.is_none());
    let reads = done(|o| o.call == Call::Read);
    let writes = done(|o| matches!(o.call, Call::Write(_)) && o.returned.is_some());
    let cas_ok = done(|o| matches!(o.returned, Some((_, Ret::Cas(true)))));
    let cas_failed = done(|o| matches!(o.returned, Some((_, Ret::Cas(false)))));
    eprintln!(
        "history: {} operations ({reads} reads, {writes} writes, {cas_ok} successful and \
         {cas_failed} failed compare-and-sets, {unknown} with unknown outcome); faults: {faults:?}",
        ops.len()
    );
    // The workload really ran, and went on after every fault.
    assert!(
        writes >= 50 && reads >= 50 && cas_ok >= 10,
        "too little work"
    );
    let after_last = completed() - faults.last().unwrap().1;
    assert!(after_last >= 20, "no progress after the last fault");

    let check = Instant::now();
    if let Err(e) = linearizable::check(&ops) {
        let dump = std::env::temp_dir().join(format!("history-{}.txt", std::process::id()));
        std::fs::write(&dump, format!("{ops:#?}")).unwrap();
        panic!("{e} (history in {})", dump.display());
    }
    eprintln!(
        "checked in {:?}; whole test {:?}",
        check.elapsed(),
        started.elapsed()
    );

    // The checker would have seen a stale read in this very history: a
    // read, after everything, of a value that was overwritten.
    let mut stale = ops.clone();
    let end = stale
        .iter()
        .filter_map(|o| o.returned.map(|(t, _)| t))
        .max()
        .unwrap();
    let key = KEYS[0];
    let first = ops
        .iter()
        .filter(|o| o.key == key)
        .find_map(|o| match (o.call, o.returned) {
            (Call::Write(v), Some(_)) => Some(v),
            _ => None,
        })
        .expect("a write to the first register");
    stale.push(Op {
        key: key.into(),
        call: Call::Read,
        invoked: end + 1,
        returned: Some((end + 2, Ret::Read(Some(first)))),
    });
    let last_read = ops
        .iter()
        .rev()
        .find(|o| o.key == key && o.call == Call::Read)
        .and_then(|o| o.returned);
    if last_read.map(|(_, r)| r) != Some(Ret::Read(Some(first))) {
        assert!(
            matches!(
                linearizable::check(&stale),
                Err(Violation::NotLinearizable { .. })
            ),
            "a stale read went unnoticed"
        );
    }
}
