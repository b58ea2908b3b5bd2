//! Old versions stay exactly as they were while later transactions write
//! (in place when no reader holds the previous version, by copying paths
//! when one does), and the current version always matches what was
//! written, whichever way each transaction started.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

mod common;

use std::collections::BTreeMap;

use swarm_api::v1::{Node, NodeDescription, StoreSnapshot, Task};
use swarm_store::{By, ReadTx, Store, StoreError};

use common::block_on;

fn node(i: u64, host: &str) -> Node {
    Node {
        id: format!("node{i:03}"),
        description: Some(NodeDescription {
            hostname: host.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(i: u64) -> Task {
    Task {
        id: format!("task{i:03}"),
        service_id: format!("svc{}", i % 3),
        node_id: format!("node{:03}", i % 7),
        slot: i + 1,
        ..Default::default()
    }
}

/// Everything a version holds, as comparable data: objects, and the ids
/// some index queries return.
type Contents = (StoreSnapshot, Vec<Vec<String>>);

fn contents(v: &ReadTx) -> Contents {
    let by = |b: By<'_>| {
        v.find::<Task>(b)
            .unwrap()
            .iter()
            .map(|t| t.id.clone())
            .collect::<Vec<_>>()
    };
    let mut indexes = vec![
        by(By::ServiceId("svc0")),
        by(By::ServiceId("svc1")),
        by(By::NodeId("node003")),
    ];
    indexes.push(
        v.find::<Node>(By::Name("HOST-5"))
            .unwrap()
            .iter()
            .map(|n| n.id.clone())
            .collect(),
    );
    (v.to_snapshot(), indexes)
}

/// One transaction of the sequence: creates, renames, reassigns, deletes.
fn step(store: &Store, i: u64) {
    block_on(store.update(|tx| {
        tx.create(node(i, &format!("host-{}", i % 10)))?;
        tx.create(task(i))?;
        if (5..1000).contains(&i) {
            let mut n = (*tx.get::<Node>(&format!("node{:03}", i - 5)).unwrap()).clone();
            n.description.as_mut().unwrap().hostname = format!("host-{i}");
            tx.update(n)?;
            let mut t = (*tx.get::<Task>(&format!("task{:03}", i - 5)).unwrap()).clone();
            t.service_id = "svc0".into();
            t.node_id = "node003".into();
            tx.update(t)?;
        }
        if (10..1000).contains(&i) && i.is_multiple_of(2) {
            tx.delete::<Task>(&format!("task{:03}", i - 10))?;
        }
        Ok::<_, StoreError>(())
    }))
    .unwrap();
}

#[test]
fn held_views_never_change_and_the_current_one_is_right() {
    let store = Store::new();
    let mut held: BTreeMap<u64, (std::sync::Arc<ReadTx>, Contents)> = BTreeMap::new();
    for i in 0..60 {
        step(&store, i);
        // Hold some versions (the next transaction then cannot write the
        // previous one in place), drop others.
        if i.is_multiple_of(7) {
            let v = store.view();
            let c = contents(&v);
            held.insert(v.version(), (v, c));
        }
        // A failed transaction in the middle changes nothing.
        if i.is_multiple_of(11) {
            let before = contents(&store.view());
            let err = block_on(store.update(|tx| {
                tx.create(node(1000 + i, "doomed"))?;
                tx.create(node(0, "duplicate id"))
            }));
            assert!(matches!(err, Err(StoreError::Exists { .. })));
            assert_eq!(contents(&store.view()), before);
        }
        // A write while a guard on the current version is live.
        if i.is_multiple_of(13) {
            store.view_with(|during| {
                let before = contents(during);
                step(&store, 1000 + i);
                assert_eq!(contents(during), before);
            });
        }
    }
    for (version, (view, was)) in &held {
        assert_eq!(view.version(), *version);
        assert_eq!(&contents(view), was, "version {version} changed");
    }

    // The same writes on a store that starts every transaction afresh
    // (views held throughout) give the same current contents.
    let reference = Store::new();
    let mut hold = Vec::new();
    for i in 0..60 {
        hold.push(reference.view());
        step(&reference, i);
        if i.is_multiple_of(13) {
            step(&reference, 1000 + i);
        }
    }
    let (mut a, ia) = contents(&store.view());
    let (mut b, ib) = contents(&reference.view());
    assert_eq!(ia, ib);
    // Versions differ only by the failed transactions (which commit nothing).
    a.version = 0;
    b.version = 0;
    let strip = |s: &mut StoreSnapshot| {
        for n in &mut s.nodes {
            n.meta = None;
        }
        for t in &mut s.tasks {
            t.meta = None;
        }
    };
    strip(&mut a);
    strip(&mut b);
    assert_eq!(a, b);
}

/// A log record of one action per object.
fn record(actions: Vec<(i32, Node)>) -> swarm_api::v1::StoreActionBatch {
    use swarm_store::AnyObject;
    swarm_api::v1::StoreActionBatch {
        actions: actions
            .into_iter()
            .map(|(kind, n)| swarm_api::v1::StoreAction {
                kind,
                target: Some(AnyObject::Node(std::sync::Arc::new(n)).to_stored()),
            })
            .collect(),
        proposed_at: None,
    }
}

/// Applies a sequence of records (creates, updates, deletes, and records
/// that fail half-way) to `store`; `hold` says whether to keep a view of
/// each version.
fn apply_all(store: &Store, hold: impl Fn(u64) -> bool) -> Vec<(std::sync::Arc<ReadTx>, Contents)> {
    const CREATE: i32 = 1;
    const UPDATE: i32 = 2;
    const REMOVE: i32 = 3;
    let mut held = Vec::new();
    let mut last_write: BTreeMap<u64, u64> = BTreeMap::new();
    for index in 1..80u64 {
        let mut actions = vec![(CREATE, node(index, &format!("host-{}", index % 10)))];
        if index > 4 && last_write.contains_key(&(index - 4)) {
            let mut n = node(index - 4, &format!("moved-{index}"));
            n.meta = Some(swarm_api::v1::Meta {
                version: last_write[&(index - 4)],
                ..Default::default()
            });
            actions.push((UPDATE, n));
        }
        if index > 9 && index.is_multiple_of(3) && last_write.contains_key(&(index - 9)) {
            actions.push((REMOVE, node(index - 9, "")));
        }
        if index.is_multiple_of(10) {
            // Fails at its second action (the id exists): nothing changes.
            let before = contents(&store.view());
            let bad = record(vec![
                (CREATE, node(5000 + index, "x")),
                (CREATE, node(index - 1, "x")),
            ]);
            assert!(store.apply(index, &bad).is_err());
            assert_eq!(contents(&store.view()).1, before.1);
            continue;
        }
        store.apply(index, &record(actions.clone())).unwrap();
        for (kind, n) in &actions {
            let i: u64 = n.id[4..].parse().unwrap();
            if *kind == REMOVE {
                last_write.remove(&i);
            } else {
                last_write.insert(i, index);
            }
        }
        if hold(index) {
            let v = store.view();
            let c = contents(&v);
            held.push((v, c));
        }
    }
    held
}

#[test]
fn applied_records_give_the_same_versions_whether_or_not_views_are_held() {
    let store = Store::new();
    let held = apply_all(&store, |i| i.is_multiple_of(6));
    for (view, was) in &held {
        assert_eq!(&contents(view), was, "version {} changed", view.version());
    }
    let reference = Store::new();
    let all = apply_all(&reference, |_| true);
    assert_eq!(contents(&store.view()), contents(&reference.view()));
    for (view, was) in &held {
        let same = all
            .iter()
            .find(|(v, _)| v.version() == view.version())
            .unwrap();
        assert_eq!(&same.1, was);
    }
}
