//! Watches under concurrent writers: per-transaction ordering, the
//! gap-free hand-over of `view_and_watch`, and bounded slow watchers.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

mod common;

use std::collections::BTreeMap;
use std::thread;

use swarm_api::v1::{Node, NodeDescription, Task};
use swarm_store::{AnyObject, Event, Kind, Store, StoreError, WatchError, WatchFilter};

use common::block_on;

/// Each writer thread owns one node and bumps a counter in its hostname.
fn bump(store: &Store, id: &str, n: u64) {
    block_on(store.update(|tx| {
        let mut node = match tx.get::<Node>(id) {
            Some(node) => (*node).clone(),
            None => {
                tx.create(Node {
                    id: id.into(),
                    ..Default::default()
                })?;
                (*tx.get::<Node>(id).unwrap()).clone()
            }
        };
        node.description = Some(NodeDescription {
            hostname: n.to_string(),
            ..Default::default()
        });
        tx.update(node)?;
        Ok::<_, StoreError>(())
    }))
    .unwrap();
}

fn counter(node: &Node) -> u64 {
    node.description
        .as_ref()
        .map_or(0, |d| d.hostname.parse().unwrap())
}

#[test]
fn watchers_see_every_transaction_in_commit_order() {
    const WRITERS: usize = 4;
    const WRITES: u64 = 300;
    let store = Store::new();
    let mut watcher = store.watch(WatchFilter::all().capacity(100_000));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            thread::spawn(move || (1..=WRITES).for_each(|n| bump(&store, &format!("node{w}"), n)))
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());

    // Rebuild from events: each transaction's events are followed by its
    // commit marker, versions go up by one, each node's counter only grows.
    let mut last_version = 0;
    let mut in_tx = 0;
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(e) = watcher.try_recv().unwrap() {
        match e {
            Event::Commit { version } => {
                assert_eq!(version, last_version + 1);
                assert_eq!(in_tx, 1, "one node changes per transaction");
                last_version = version;
                in_tx = 0;
            }
            Event::Created(AnyObject::Node(n))
            | Event::Updated {
                new: AnyObject::Node(n),
                ..
            } => {
                let prev = counters.insert(n.id.clone(), counter(&n)).unwrap_or(0);
                assert!(counter(&n) > prev || (prev == 0 && counter(&n) == 1));
                assert_eq!(
                    n.meta.as_ref().unwrap().version,
                    last_version + 1,
                    "object version = its commit"
                );
                in_tx += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(last_version, WRITERS as u64 * WRITES);
    assert!(counters.values().all(|c| *c == WRITES));
}

#[test]
fn view_and_watch_hands_over_without_gap_or_duplicate() {
    let store = Store::new();
    let writer = {
        let store = store.clone();
        thread::spawn(move || (1..=2000).for_each(|n| bump(&store, "counter", n)))
    };
    // Join the stream at arbitrary points while the writer runs; each time
    // the snapshot plus the events must continue exactly where it left off.
    let mut joined = Vec::new();
    for i in 0..20u64 {
        // Spread the joins over the writer's run.
        while store.version() < i * 90 && !writer.is_finished() {
            thread::yield_now();
        }
        let (start, watcher) = store.view_and_watch(WatchFilter::all().kinds([Kind::Node]), |v| {
            (
                v.version(),
                v.get::<Node>("counter").map_or(0, |n| counter(&n)),
            )
        });
        joined.push((start, watcher));
    }
    assert!(
        joined
            .iter()
            .filter(|((v, _), _)| *v > 0 && *v < 2000)
            .count()
            > 1,
        "joined mid-stream"
    );
    writer.join().unwrap();
    for ((version, count), mut watcher) in joined {
        let (mut v, mut c) = (version, count);
        while let Some(e) = watcher.try_recv().unwrap() {
            match e {
                Event::Commit { version } => {
                    assert_eq!(version, v + 1, "no transaction missed or repeated");
                    v = version;
                }
                Event::Created(AnyObject::Node(n))
                | Event::Updated {
                    new: AnyObject::Node(n),
                    ..
                } => {
                    assert_eq!(counter(&n), c + 1, "no change missed or repeated");
                    c = counter(&n);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((v, c), (2000, 2000));
    }
}

#[test]
fn a_slow_watcher_is_dropped_with_lagged_and_memory_stays_bounded() {
    let store = Store::new();
    let mut slow = store.watch(WatchFilter::all().capacity(10));
    let mut fast = store.watch(WatchFilter::all().capacity(10));
    for n in 1..=50 {
        bump(&store, "n", n);
        // The fast watcher keeps up.
        while fast.try_recv().unwrap().is_some() {}
    }
    let mut delivered = 0;
    let err = loop {
        match slow.try_recv() {
            Ok(Some(_)) => delivered += 1,
            Ok(None) => panic!("a lagged watcher must end with an error"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, WatchError::Lagged);
    assert!(delivered <= 10, "never more than the capacity is buffered");
    assert_eq!(fast.try_recv(), Ok(None));
}

#[test]
fn filters_select_kinds_and_predicates() {
    let store = Store::new();
    let mut tasks_of_a = store.watch(
        WatchFilter::all()
            .kinds([Kind::Task])
            .commits(false)
            .matching(|e| matches!(e.object(), Some(AnyObject::Task(t)) if t.service_id == "a")),
    );
    block_on(store.update(|tx| {
        tx.create(Node {
            id: "n".into(),
            ..Default::default()
        })?;
        tx.create(Task {
            id: "t1".into(),
            service_id: "a".into(),
            ..Default::default()
        })?;
        tx.create(Task {
            id: "t2".into(),
            service_id: "b".into(),
            ..Default::default()
        })?;
        Ok::<_, StoreError>(())
    }))
    .unwrap();
    let got = tasks_of_a.try_recv().unwrap().unwrap();
    assert!(matches!(got, Event::Created(AnyObject::Task(ref t)) if t.id == "t1"));
    assert_eq!(tasks_of_a.try_recv(), Ok(None));
}

#[test]
fn store_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let store = Store::new();
    let batch = store.batch(|_| Ok::<_, StoreError>(()));
    send(&batch);
    let update = store.update(|_| Ok::<_, StoreError>(()));
    send(&update);
}

#[test]
fn dropping_the_store_closes_watchers() {
    let store = Store::new();
    let mut w = store.watch(WatchFilter::all());
    drop(store);
    assert_eq!(w.try_recv(), Err(WatchError::Closed));
}

#[test]
fn async_recv_wakes_on_commit() {
    let store = Store::new();
    let mut w = store.watch(WatchFilter::all().commits(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = store.clone();
        let writer = tokio::spawn(async move {
            s.update(|tx| {
                tx.create(Node {
                    id: "late".into(),
                    ..Default::default()
                })
                .map(drop)
            })
            .await
        });
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), w.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(e, Event::Created(AnyObject::Node(ref n)) if n.id == "late"));
        writer.await.unwrap().unwrap();
    });
}
