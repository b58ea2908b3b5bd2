//! Snapshots: a full round trip through bytes, refusal of snapshots that do
//! not hold together, and watchers told the difference on restore.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

use prost::Message;
use swarm_api::v1::*;
use swarm_store::{AnyObject, By, Event, Store, StoreError, WatchFilter};

fn named(name: &str) -> Option<Annotations> {
    Some(Annotations {
        name: name.into(),
        labels: [("env".to_string(), "prod".to_string())].into(),
    })
}

async fn populated() -> Store {
    let store = Store::new();
    store
        .batch(|b| {
            b.update(|tx| {
                tx.create(Cluster {
                    id: "c".into(),
                    spec: Some(ClusterSpec {
                        annotations: named("default"),
                        ..Default::default()
                    }),
                    ..Default::default()
                })?;
                tx.create(Network {
                    id: "net".into(),
                    spec: Some(NetworkSpec {
                        annotations: named("backend"),
                        ..Default::default()
                    }),
                    ..Default::default()
                })?;
                tx.create(Secret {
                    id: "sec".into(),
                    spec: Some(SecretSpec {
                        annotations: named("pw"),
                        data: b"x".to_vec(),
                        driver: None,
                    }),
                    ..Default::default()
                })?;
                tx.create(Config {
                    id: "cfg".into(),
                    spec: Some(ConfigSpec {
                        annotations: named("conf"),
                        data: b"y".to_vec(),
                    }),
                    ..Default::default()
                })?;
                Ok(())
            })?;
            for n in 0..20 {
                b.update(|tx| {
                    tx.create(Node {
                        id: format!("node{n:02}"),
                        role: n % 2,
                        ..Default::default()
                    })
                    .map(drop)
                })?;
            }
            for s in 0..10 {
                b.update(|tx| {
                    tx.create(Service {
                        id: format!("svc{s}"),
                        spec: Some(ServiceSpec {
                            annotations: named(&format!("web{s}")),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })?;
                    for slot in 1..=30u64 {
                        tx.create(Task {
                            id: format!("task{s}-{slot:02}"),
                            service_id: format!("svc{s}"),
                            slot,
                            node_id: format!("node{:02}", slot % 20),
                            desired_state: TaskState::Running.into(),
                            ..Default::default()
                        })?;
                    }
                    Ok(())
                })?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn round_trip_through_bytes_keeps_objects_and_indexes() {
    let store = populated().await;
    let bytes = store.save_snapshot().encode_to_vec();
    let restored = Store::new();
    restored
        .restore(StoreSnapshot::decode(bytes.as_slice()).unwrap())
        .unwrap();
    let (a, b) = (store.view(), restored.view());
    assert_eq!(a.version(), b.version());
    assert_eq!(a.to_snapshot(), b.to_snapshot());
    for s in 0..10 {
        let id = format!("svc{s}");
        assert_eq!(b.find::<Task>(By::ServiceId(&id)).unwrap().len(), 30);
        assert_eq!(
            a.find::<Task>(By::ServiceId(&id)).unwrap(),
            b.find::<Task>(By::ServiceId(&id)).unwrap()
        );
    }
    assert_eq!(
        b.find::<Node>(By::Role(NodeRole::Manager)).unwrap().len(),
        10
    );
    assert_eq!(b.find::<Task>(By::NodeId("node03")).unwrap().len(), 20);
    assert_eq!(b.lookup::<Network>("BACKEND").unwrap().id, "net");
    assert_eq!(
        b.find::<Secret>(By::Label("env", Some("prod")))
            .unwrap()
            .len(),
        1
    );
    // Writes continue on the restored store from the snapshot's version.
    restored
        .update(|tx| tx.delete::<Service>("svc0").map(drop))
        .await
        .unwrap();
    assert_eq!(restored.version(), store.version() + 1);
}

#[tokio::test]
async fn snapshots_that_do_not_hold_together_are_refused() {
    let store = populated().await;
    let before = store.save_snapshot();
    let mut dup = before.clone();
    dup.tasks.push(dup.tasks[0].clone());
    let mut names = before.clone();
    names.services[1]
        .spec
        .as_mut()
        .unwrap()
        .annotations
        .as_mut()
        .unwrap()
        .name = "WEB0".into();
    let mut no_id = before.clone();
    no_id.nodes[0].id.clear();
    for bad in [dup, names, no_id] {
        let err = store.restore(bad).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert_eq!(store.save_snapshot(), before, "nothing changed");
    }
    assert!(StoreSnapshot::decode(&b"\xff\xff\xff\x0f not a snapshot"[..]).is_err());
}

#[tokio::test]
async fn restore_tells_watchers_the_difference() {
    let store = Store::new();
    store
        .update(|tx| {
            tx.create(Node {
                id: "gone".into(),
                ..Default::default()
            })?;
            tx.create(Node {
                id: "kept".into(),
                ..Default::default()
            })?;
            tx.create(Node {
                id: "changed".into(),
                ..Default::default()
            })
        })
        .await
        .unwrap();
    let mut snap = store.save_snapshot();
    snap.version = 40;
    snap.nodes.retain(|n| n.id != "gone");
    snap.nodes
        .iter_mut()
        .filter(|n| n.id == "changed")
        .for_each(|n| n.spec = Some(NodeSpec::default()));
    snap.nodes.push(Node {
        id: "new".into(),
        ..Default::default()
    });
    let mut w = store.watch(WatchFilter::all());
    store.restore(snap).unwrap();
    let mut seen = Vec::new();
    while let Some(e) = w.try_recv().unwrap() {
        seen.push(match e {
            Event::Created(AnyObject::Node(n)) => format!("created {}", n.id),
            Event::Updated {
                new: AnyObject::Node(n),
                ..
            } => format!("updated {}", n.id),
            Event::Deleted(AnyObject::Node(n)) => format!("deleted {}", n.id),
            Event::Commit { version } => format!("commit {version}"),
            other => panic!("{other:?}"),
        });
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "commit 40",
            "created new",
            "deleted gone",
            "updated changed"
        ]
    );
}
