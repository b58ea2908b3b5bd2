//! The proposer seam with a simple in-process log: writes take effect when
//! the log applies them, versions are log indexes, conflicts between
//! concurrent proposals are caught at apply time on every replica.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use swarm_api::v1::{Annotations, Service, ServiceSpec, StoreAction, StoreActionBatch, Task};
use swarm_store::{
    AnyObject, BoxFuture, Event, LeaderHint, ProposeError, Proposer, Store, StoreError, WatchFilter,
};
use tokio::sync::{Semaphore, oneshot};

/// A log that applies each proposal to every replica, at indexes 2, 4, 6...
/// (odd indexes stand for raft entries that are not store changes). When
/// `gate` is set, each proposal waits for a permit of it.
#[derive(Clone)]
struct TestLog {
    replicas: Arc<Mutex<Vec<Store>>>,
    next: Arc<Mutex<u64>>,
    gate: Option<Arc<Semaphore>>,
    proposed: Arc<AtomicUsize>,
}

impl TestLog {
    fn new(replicas: Vec<Store>) -> Self {
        TestLog {
            replicas: Arc::new(Mutex::new(replicas)),
            next: Arc::new(Mutex::new(0)),
            gate: None,
            proposed: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Proposer for TestLog {
    fn propose(&self, batch: StoreActionBatch) -> BoxFuture<Result<u64, ProposeError>> {
        self.proposed.fetch_add(1, Ordering::SeqCst);
        let log = self.clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            if let Some(gate) = &log.gate {
                gate.acquire().await.unwrap().forget();
            }
            let index = {
                let mut next = log.next.lock().unwrap();
                *next += 2;
                *next
            };
            let mut outcome = Ok(index);
            for (i, store) in log.replicas.lock().unwrap().iter().enumerate() {
                let r = store.apply(index, &batch);
                if i == 0 {
                    outcome = r
                        .map(|()| index)
                        .map_err(|e| ProposeError::Rejected(Box::new(e)));
                }
            }
            let _ = tx.send(outcome);
        });
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(ProposeError::Unknown("log gone".into())))
        })
    }
}

fn service(id: &str, name: &str) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn writes_commit_through_the_log_with_log_index_versions() {
    let (leader, follower) = (Store::new(), Store::new());
    leader.set_proposer(Some(Box::new(TestLog::new(vec![
        leader.clone(),
        follower.clone(),
    ]))));
    let mut follower_events = follower.watch(WatchFilter::all());

    leader
        .update(|tx| tx.create(service("s1", "web")).map(drop))
        .await
        .unwrap();
    let s = leader.view().get::<Service>("s1").unwrap();
    assert_eq!(s.meta.as_ref().unwrap().version, 2);
    let mut changed = (*s).clone();
    changed
        .spec
        .as_mut()
        .unwrap()
        .annotations
        .as_mut()
        .unwrap()
        .name = "api".into();
    leader
        .update(|tx| tx.update(changed).map(drop))
        .await
        .unwrap();

    for store in [&leader, &follower] {
        let s = store.view().get::<Service>("s1").unwrap();
        assert_eq!(s.meta.as_ref().unwrap().version, 4);
        assert_eq!(
            s.spec.as_ref().unwrap().annotations.as_ref().unwrap().name,
            "api"
        );
        assert_eq!(store.version(), 4);
    }
    assert!(matches!(
        follower_events.try_recv().unwrap(),
        Some(Event::Created(_))
    ));
    assert_eq!(
        follower_events.try_recv().unwrap(),
        Some(Event::Commit { version: 2 })
    );
    assert!(matches!(
        follower_events.try_recv().unwrap(),
        Some(Event::Updated { .. })
    ));
    assert_eq!(
        follower_events.try_recv().unwrap(),
        Some(Event::Commit { version: 4 })
    );
}

#[tokio::test]
async fn the_store_is_unchanged_until_the_log_applies() {
    let store = Store::new();
    let gate = Arc::new(Semaphore::new(0));
    let mut log = TestLog::new(vec![store.clone()]);
    log.gate = Some(gate.clone());
    store.set_proposer(Some(Box::new(log)));
    let s2 = store.clone();
    let pending = tokio::spawn(async move {
        s2.update(|tx| tx.create(service("s1", "web")).map(drop))
            .await
    });
    tokio::task::yield_now().await;
    assert!(
        store.view().get::<Service>("s1").is_none(),
        "not visible before commit"
    );
    gate.add_permits(1);
    pending.await.unwrap().unwrap();
    assert!(store.view().get::<Service>("s1").is_some());
}

#[tokio::test]
async fn concurrent_updates_of_one_version_conflict_at_apply() {
    let store = Store::new();
    store.set_proposer(Some(Box::new(TestLog::new(vec![store.clone()]))));
    store
        .update(|tx| tx.create(service("s1", "web")).map(drop))
        .await
        .unwrap();

    // Both transactions read version 2 before either commits.
    let gate = Arc::new(Semaphore::new(0));
    let mut log = TestLog::new(vec![store.clone()]);
    log.next = Arc::new(Mutex::new(store.version()));
    log.gate = Some(gate.clone());
    let proposed = log.proposed.clone();
    store.set_proposer(Some(Box::new(log)));
    let rename = |name: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .update(|tx| {
                    let mut s = (*tx.get::<Service>("s1").unwrap()).clone();
                    s.spec.as_mut().unwrap().annotations.as_mut().unwrap().name = name.into();
                    tx.update(s).map(drop)
                })
                .await
        })
    };
    let (a, b) = (rename("a"), rename("b"));
    while proposed.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(2);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let conflicts = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::SequenceConflict { .. })))
        .count();
    assert_eq!(conflicts, 1, "exactly one wins: {a:?} {b:?}");
    let name = store
        .view()
        .get::<Service>("s1")
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()
        .name
        .clone();
    assert_eq!(name, if a.is_ok() { "a" } else { "b" });
}

struct Refusing(ProposeError);

impl Proposer for Refusing {
    fn propose(&self, _: StoreActionBatch) -> BoxFuture<Result<u64, ProposeError>> {
        let e = self.0.clone();
        Box::pin(async move { Err(e) })
    }
}

#[tokio::test]
async fn proposal_errors_reach_the_writer_and_change_nothing() {
    let store = Store::new();
    let hint = LeaderHint {
        id: 3,
        addr: "10.0.0.3:4242".into(),
    };
    store.set_proposer(Some(Box::new(Refusing(ProposeError::NotLeader(Some(
        hint.clone(),
    ))))));
    let err = store
        .update(|tx| tx.create(service("s1", "web")).map(drop))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Proposal(ProposeError::NotLeader(Some(hint)))
    );
    assert!(
        err.to_string().contains("leader is 3 at 10.0.0.3:4242"),
        "{err}"
    );
    assert!(err.is_definite_failure());
    assert!(store.view().get::<Service>("s1").is_none());

    store.set_proposer(Some(Box::new(Refusing(ProposeError::Unknown(
        "timed out".into(),
    )))));
    let err = store
        .update(|tx| tx.create(service("s1", "web")).map(drop))
        .await
        .unwrap_err();
    assert!(!err.is_definite_failure(), "a timeout may have committed");

    // A transaction that writes nothing proposes nothing.
    store
        .update(|tx| Ok::<_, StoreError>(tx.count::<Service>()))
        .await
        .unwrap();
}

#[tokio::test]
async fn batches_propose_bounded_transactions_in_order() {
    let store = Store::new();
    store.set_proposer(Some(Box::new(TestLog::new(vec![store.clone()]))));
    let mut w = store.watch(WatchFilter::all().capacity(100_000).commits(true));
    let n = store
        .batch(|b| {
            for i in 0..450 {
                b.update(|tx| {
                    tx.create(Task {
                        id: format!("t{i:03}"),
                        ..Default::default()
                    })
                    .map(drop)
                })?;
            }
            // t000 was committed by the first transaction; this update is
            // based on the version the log gave it.
            b.update(|tx| {
                let mut t = (*tx.get::<Task>("t000").unwrap()).clone();
                t.node_id = "n1".into();
                tx.update(t).map(drop)
            })?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(n, 451);
    let view = store.view();
    assert_eq!(view.count::<Task>(), 450);
    let t0 = view.get::<Task>("t000").unwrap();
    assert_eq!(t0.node_id, "n1");
    let mut commits = Vec::new();
    while let Some(e) = w.try_recv().unwrap() {
        if let Event::Commit { version } = e {
            commits.push(version);
        }
    }
    assert_eq!(commits, vec![2, 4, 6], "200 + 200 + 51 changes");
    assert_eq!(t0.meta.as_ref().unwrap().version, 6);
}

#[test]
fn apply_is_idempotent_and_refuses_garbage_without_change() {
    let store = Store::new();
    let create = StoreActionBatch {
        actions: vec![StoreAction {
            kind: 1,
            target: Some(AnyObject::Service(Arc::new(service("s1", "web"))).to_stored()),
        }],
        proposed_at: None,
    };
    store.apply(5, &create).unwrap();
    store.apply(5, &create).unwrap(); // replayed: ignored
    assert_eq!(store.view().count::<Service>(), 1);

    let garbage = StoreActionBatch {
        actions: vec![StoreAction {
            kind: 9,
            target: None,
        }],
        proposed_at: None,
    };
    assert!(matches!(
        store.apply(6, &garbage),
        Err(StoreError::Corrupt(_))
    ));
    let empty_target = StoreActionBatch {
        actions: vec![StoreAction {
            kind: 1,
            target: None,
        }],
        proposed_at: None,
    };
    assert!(matches!(
        store.apply(7, &empty_target),
        Err(StoreError::Corrupt(_))
    ));
    // A batch whose second action fails leaves the first undone too.
    let half = StoreActionBatch {
        actions: vec![
            StoreAction {
                kind: 1,
                target: Some(AnyObject::Service(Arc::new(service("s2", "api"))).to_stored()),
            },
            StoreAction {
                kind: 1,
                target: Some(AnyObject::Service(Arc::new(service("s3", "WEB"))).to_stored()),
            },
        ],
        proposed_at: None,
    };
    assert!(matches!(
        store.apply(8, &half),
        Err(StoreError::NameConflict { .. })
    ));
    let view = store.view();
    assert_eq!(view.count::<Service>(), 1);
    assert_eq!(view.version(), 8, "the index advances even when refused");
}
