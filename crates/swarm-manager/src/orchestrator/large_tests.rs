//! Passes whose changes for one service do not fit in one raft proposal:
//! a store behind a log that refuses proposals over a size, as raft does
//! (`max_proposal_bytes`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use prost::Message;
use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;
use swarm_store::{BoxFuture, ProposeError, Proposer, Store};

use super::pass::{Scope, commit, plan};

/// Applies proposals at once, refusing those over `limit` bytes.
struct SizeLimitedLog {
    store: Store,
    next: AtomicU64,
    limit: usize,
}

impl Proposer for SizeLimitedLog {
    fn propose(&self, batch: StoreActionBatch) -> BoxFuture<Result<u64, ProposeError>> {
        let size = batch.encoded_len();
        let outcome = if size > self.limit {
            Err(ProposeError::TooLarge {
                size,
                limit: self.limit,
            })
        } else {
            let index = self.next.fetch_add(1, Ordering::SeqCst) + 1;
            self.store
                .apply(index, &batch)
                .map(|()| index)
                .map_err(|e| ProposeError::Rejected(Box::new(e)))
        };
        Box::pin(async move { outcome })
    }
}

fn store_with_limit(limit: usize) -> Store {
    let store = Store::new();
    let log = SizeLimitedLog {
        store: store.clone(),
        next: AtomicU64::new(0),
        limit,
    };
    store.set_proposer(Some(Box::new(log)));
    store
}

fn service(replicas: u64) -> Service {
    Service {
        id: "big".into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: "big".into(),
                ..Default::default()
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox".into(),
                    command: vec!["sleep".into(), "3600".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas })),
            ..Default::default()
        }),
        spec_version: 1,
        ..Default::default()
    }
}

fn live(store: &Store) -> usize {
    store
        .view()
        .all::<Task>()
        .iter()
        .filter(|t| t.desired_state() <= TaskState::Running)
        .count()
}

/// One pass over everything; returns the groups that failed.
fn pass(store: &Store) -> usize {
    let p = store.view_with(|v| plan(v, &Scope::All, SystemTime::now()));
    futures::executor::block_on(commit(store, &p))
}

#[test]
fn a_service_too_large_for_one_proposal_is_written_in_pieces() {
    // 64 KiB holds a few hundred of these tasks: 2,000 need several
    // proposals, as 10,000 replicas do under raft's 1.5 MB limit.
    let store = store_with_limit(64 * 1024);
    futures::executor::block_on(store.update(|tx| tx.create(service(2_000)).map(drop))).unwrap();
    assert_eq!(pass(&store), 0, "the creation pass must commit");
    assert_eq!(live(&store), 2_000);

    // Scaling to 1 stops 1,999 tasks: as large a change the other way.
    futures::executor::block_on(store.update(|tx| {
        let mut s = (*tx.get::<Service>("big").unwrap()).clone();
        s.spec = service(1).spec;
        s.spec_version = 2;
        tx.update(s).map(drop)
    }))
    .unwrap();
    assert_eq!(pass(&store), 0, "the scale-down pass must commit");
    assert_eq!(live(&store), 1);
}

#[test]
fn a_stale_service_write_still_loses_its_group() {
    // The service write leads its group: if it is refused (the service
    // moved since the pass read it), none of the group's changes land.
    let store = store_with_limit(64 * 1024);
    futures::executor::block_on(store.update(|tx| tx.create(service(500)).map(drop))).unwrap();
    let mut p = store.view_with(|v| plan(v, &Scope::All, SystemTime::now()));
    let mut stale = (*store.view().get::<Service>("big").unwrap()).clone();
    stale.spec_version = 7;
    p.groups[0].service = Some(stale);
    futures::executor::block_on(store.update(|tx| {
        let s = (*tx.get::<Service>("big").unwrap()).clone();
        tx.update(s).map(drop)
    }))
    .unwrap();
    assert_eq!(futures::executor::block_on(commit(&store, &p)), 1);
    assert_eq!(live(&store), 0, "no task of a refused group is written");
}
