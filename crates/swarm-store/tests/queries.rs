//! Lookups by id, name and prefix, and queries a kind has no index for.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

use swarm_api::v1::{Annotations, Node, Service, ServiceSpec, Task, TaskState, TaskStatus};
use swarm_store::{By, Kind, Store, StoreError};

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
async fn lookup_resolves_ids_names_and_unique_prefixes() {
    let store = Store::new();
    store
        .update(|tx| {
            tx.create(service("abc111", "web"))?;
            tx.create(service("abc222", "api"))?;
            tx.create(service("xyz333", "db"))
        })
        .await
        .unwrap();
    let v = store.view();
    assert_eq!(v.lookup::<Service>("abc111").unwrap().id, "abc111");
    assert_eq!(v.lookup::<Service>("Web").unwrap().id, "abc111");
    assert_eq!(v.lookup::<Service>("xy").unwrap().id, "xyz333");
    assert_eq!(
        v.lookup::<Service>("abc").unwrap_err(),
        StoreError::Ambiguous {
            kind: Kind::Service,
            prefix: "abc".into(),
            matches: 2
        }
    );
    assert!(matches!(
        v.lookup::<Service>("nope"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        v.lookup::<Service>(""),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(v.find::<Service>(By::IdPrefix("abc")).unwrap().len(), 2);
    assert_eq!(
        v.find::<Service>(By::NamePrefix("A")).unwrap()[0].id,
        "abc222"
    );
}

#[tokio::test]
async fn queries_without_an_index_are_errors_not_scans() {
    let store = Store::new();
    let err = store.view().find::<Node>(By::ServiceId("s")).unwrap_err();
    assert_eq!(err.to_string(), "node has no index for service s");
    assert!(
        store
            .view()
            .find::<Service>(By::DesiredState(TaskState::Running))
            .is_err()
    );
}

#[tokio::test]
async fn task_state_index_follows_status_changes() {
    let store = Store::new();
    store
        .update(|tx| {
            tx.create(Task {
                id: "t".into(),
                ..Default::default()
            })
            .map(drop)
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .view()
            .find::<Task>(By::TaskState(TaskState::New))
            .unwrap()
            .len(),
        1
    );
    store
        .update(|tx| {
            let mut t = (*tx.get::<Task>("t").unwrap()).clone();
            t.status = Some(TaskStatus {
                state: TaskState::Running.into(),
                ..Default::default()
            });
            tx.update(t).map(drop)
        })
        .await
        .unwrap();
    let v = store.view();
    assert!(
        v.find::<Task>(By::TaskState(TaskState::New))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        v.find::<Task>(By::TaskState(TaskState::Running))
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_failed_transaction_changes_nothing() {
    let store = Store::new();
    store
        .update(|tx| tx.create(service("s1", "web")).map(drop))
        .await
        .unwrap();
    let err = store
        .update(|tx| {
            tx.create(service("s2", "api"))?;
            tx.create(service("s3", "WEB")).map(drop)
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::NameConflict {
            kind: Kind::Service,
            name: "WEB".into()
        }
    );
    assert!(store.view().get::<Service>("s2").is_none());
    assert_eq!(store.version(), 1);
}
