//! Model-based property test: random sequences of creates, updates and
//! deletes, grouped into transactions and batches, run against the store
//! and against a plain reference model. After every step the store holds
//! what the model holds, its indexes answer what a filter over the model
//! answers, and the events a watcher received rebuild the same state.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use swarm_api::v1::{Annotations, Meta, Service, ServiceSpec, Task, TaskState, Timestamp};
use swarm_store::{
    AnyObject, By, Event, Kind, ManualClock, Store, StoreError, Tx, WatchFilter, Watcher,
};

const SERVICE_IDS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const SERVICE_NAMES: [&str; 4] = ["a", "b", "A", "c"];
const TASK_IDS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];
const NODES: [&str; 3] = ["", "n1", "n2"];
const DESIRED: [TaskState; 3] = [TaskState::Ready, TaskState::Running, TaskState::Shutdown];

#[derive(Debug, Clone)]
enum Op {
    CreateService {
        id: usize,
        name: usize,
        label: bool,
    },
    UpdateService {
        id: usize,
        name: usize,
        stale: bool,
    },
    DeleteService {
        id: usize,
    },
    CreateTask {
        id: usize,
        service: usize,
        slot: u64,
        node: usize,
    },
    UpdateTask {
        id: usize,
        node: usize,
        desired: usize,
        stale: bool,
    },
    DeleteTask {
        id: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 0..4usize, any::<bool>()).prop_map(|(id, name, label)| Op::CreateService {
            id,
            name,
            label
        }),
        (0..4usize, 0..4usize, any::<bool>()).prop_map(|(id, name, stale)| Op::UpdateService {
            id,
            name,
            stale
        }),
        (0..4usize).prop_map(|id| Op::DeleteService { id }),
        (0..6usize, 0..4usize, 1..4u64, 0..3usize).prop_map(|(id, service, slot, node)| {
            Op::CreateTask {
                id,
                service,
                slot,
                node,
            }
        }),
        (0..6usize, 0..3usize, 0..3usize, any::<bool>()).prop_map(|(id, node, desired, stale)| {
            Op::UpdateTask {
                id,
                node,
                desired,
                stale,
            }
        }),
        (0..6usize).prop_map(|id| Op::DeleteTask { id }),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    /// One transaction of several operations: all or nothing.
    Update(Vec<Op>),
    /// A batch: each piece atomic, failed pieces skipped.
    Batch(Vec<Vec<Op>>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => prop::collection::vec(op(), 1..4).prop_map(Step::Update),
        1 => prop::collection::vec(prop::collection::vec(op(), 1..3), 1..4).prop_map(Step::Batch),
    ]
}

/// The reference: plain maps and the rules written out longhand.
#[derive(Debug, Clone, Default)]
struct Model {
    services: BTreeMap<String, Service>,
    tasks: BTreeMap<String, Task>,
    version: u64,
}

/// What the model expects of one operation.
type Outcome = Result<(), &'static str>;

fn err_name(e: &StoreError) -> &'static str {
    match e {
        StoreError::NotFound { .. } => "not found",
        StoreError::Exists { .. } => "exists",
        StoreError::NameConflict { .. } => "name conflict",
        StoreError::SequenceConflict { .. } => "sequence",
        _ => "other",
    }
}

fn version_of(meta: &Option<Meta>) -> u64 {
    meta.as_ref().map_or(0, |m| m.version)
}

fn service_obj(id: &str, name: &str, label: bool) -> Service {
    let mut annotations = Annotations {
        name: name.into(),
        ..Default::default()
    };
    if label {
        annotations.labels.insert("tier".into(), "front".into());
    }
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(annotations),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service_name(s: &Service) -> String {
    s.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.to_lowercase())
        .unwrap_or_default()
}

/// A transaction in the model: a copy of the state, the version writes
/// get, and the versions objects had when first touched.
struct ModelTx {
    state: Model,
    version: u64,
    now: Timestamp,
    first: BTreeMap<(Kind, String), u64>,
}

impl ModelTx {
    fn stamp(&self, meta: &mut Option<Meta>, created_at: Option<Timestamp>) {
        *meta = Some(Meta {
            version: self.version,
            created_at: Some(created_at.unwrap_or(self.now)),
            updated_at: Some(self.now),
        });
    }

    fn accepts(&self, kind: Kind, id: &str, given: u64, current: u64) -> bool {
        given == current || self.first.get(&(kind, id.to_string())) == Some(&given)
    }

    fn touch(&mut self, kind: Kind, id: &str, version: u64) {
        self.first.entry((kind, id.to_string())).or_insert(version);
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::CreateService { id, name, label } => {
                let (id, name) = (SERVICE_IDS[*id], SERVICE_NAMES[*name]);
                if self.state.services.contains_key(id) {
                    return Err("exists");
                }
                if self
                    .state
                    .services
                    .values()
                    .any(|s| service_name(s) == name.to_lowercase())
                {
                    return Err("name conflict");
                }
                let mut s = service_obj(id, name, *label);
                self.stamp(&mut s.meta, None);
                self.state.services.insert(id.into(), s);
                Ok(())
            }
            Op::UpdateService { id, name, stale } => {
                let (id, name) = (SERVICE_IDS[*id], SERVICE_NAMES[*name]);
                let Some(cur) = self.state.services.get(id).cloned() else {
                    return Err("not found");
                };
                let current = version_of(&cur.meta);
                let given = if *stale {
                    current.saturating_sub(1)
                } else {
                    current
                };
                if !self.accepts(Kind::Service, id, given, current) {
                    return Err("sequence");
                }
                if self
                    .state
                    .services
                    .values()
                    .any(|s| s.id != id && service_name(s) == name.to_lowercase())
                {
                    return Err("name conflict");
                }
                self.touch(Kind::Service, id, current);
                let mut s = cur.clone();
                s.spec.as_mut().unwrap().annotations.as_mut().unwrap().name = name.into();
                self.stamp(&mut s.meta, cur.meta.as_ref().and_then(|m| m.created_at));
                self.state.services.insert(id.into(), s);
                Ok(())
            }
            Op::DeleteService { id } => {
                let id = SERVICE_IDS[*id];
                let Some(cur) = self.state.services.remove(id) else {
                    return Err("not found");
                };
                self.touch(Kind::Service, id, version_of(&cur.meta));
                Ok(())
            }
            Op::CreateTask {
                id,
                service,
                slot,
                node,
            } => {
                let id = TASK_IDS[*id];
                if self.state.tasks.contains_key(id) {
                    return Err("exists");
                }
                let mut t = Task {
                    id: id.into(),
                    service_id: SERVICE_IDS[*service].into(),
                    slot: *slot,
                    node_id: NODES[*node].into(),
                    ..Default::default()
                };
                self.stamp(&mut t.meta, None);
                self.state.tasks.insert(id.into(), t);
                Ok(())
            }
            Op::UpdateTask {
                id,
                node,
                desired,
                stale,
            } => {
                let id = TASK_IDS[*id];
                let Some(cur) = self.state.tasks.get(id).cloned() else {
                    return Err("not found");
                };
                let current = version_of(&cur.meta);
                let given = if *stale {
                    current.saturating_sub(1)
                } else {
                    current
                };
                if !self.accepts(Kind::Task, id, given, current) {
                    return Err("sequence");
                }
                self.touch(Kind::Task, id, current);
                let mut t = cur.clone();
                t.node_id = NODES[*node].into();
                t.desired_state = DESIRED[*desired].into();
                self.stamp(&mut t.meta, cur.meta.as_ref().and_then(|m| m.created_at));
                self.state.tasks.insert(id.into(), t);
                Ok(())
            }
            Op::DeleteTask { id } => {
                let id = TASK_IDS[*id];
                let Some(cur) = self.state.tasks.remove(id) else {
                    return Err("not found");
                };
                self.touch(Kind::Task, id, version_of(&cur.meta));
                Ok(())
            }
        }
    }
}

/// The same operation against a store transaction.
fn run(tx: &mut Tx, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::CreateService { id, name, label } => tx
            .create(service_obj(SERVICE_IDS[*id], SERVICE_NAMES[*name], *label))
            .map(drop),
        Op::UpdateService { id, name, stale } => {
            let id = SERVICE_IDS[*id];
            let mut s = match tx.get::<Service>(id) {
                Some(s) => (*s).clone(),
                None => service_obj(id, "x", false),
            };
            s.spec.as_mut().unwrap().annotations.as_mut().unwrap().name =
                SERVICE_NAMES[*name].into();
            if *stale {
                let m = s.meta.get_or_insert_with(Meta::default);
                m.version = m.version.saturating_sub(1);
            }
            tx.update(s).map(drop)
        }
        Op::DeleteService { id } => tx.delete::<Service>(SERVICE_IDS[*id]).map(drop),
        Op::CreateTask {
            id,
            service,
            slot,
            node,
        } => tx
            .create(Task {
                id: TASK_IDS[*id].into(),
                service_id: SERVICE_IDS[*service].into(),
                slot: *slot,
                node_id: NODES[*node].into(),
                ..Default::default()
            })
            .map(drop),
        Op::UpdateTask {
            id,
            node,
            desired,
            stale,
        } => {
            let id = TASK_IDS[*id];
            let mut t = match tx.get::<Task>(id) {
                Some(t) => (*t).clone(),
                None => Task {
                    id: id.into(),
                    ..Default::default()
                },
            };
            t.node_id = NODES[*node].into();
            t.desired_state = DESIRED[*desired].into();
            if *stale {
                let m = t.meta.get_or_insert_with(Meta::default);
                m.version = m.version.saturating_sub(1);
            }
            tx.update(t).map(drop)
        }
        Op::DeleteTask { id } => tx.delete::<Task>(TASK_IDS[*id]).map(drop),
    }
}

/// Whether a model transaction changed anything at all (a create undone by
/// a delete in the same transaction is no change).
fn changed(before: &Model, after: &Model, touched: &BTreeSet<(Kind, String)>) -> bool {
    touched.iter().any(|(kind, id)| match kind {
        Kind::Service => before.services.contains_key(id) || after.services.contains_key(id),
        _ => before.tasks.contains_key(id) || after.tasks.contains_key(id),
    })
}

fn touched_ids(ops: &[Op]) -> BTreeSet<(Kind, String)> {
    ops.iter()
        .map(|op| match op {
            Op::CreateService { id, .. }
            | Op::UpdateService { id, .. }
            | Op::DeleteService { id } => (Kind::Service, SERVICE_IDS[*id].to_string()),
            Op::CreateTask { id, .. } | Op::UpdateTask { id, .. } | Op::DeleteTask { id } => {
                (Kind::Task, TASK_IDS[*id].to_string())
            }
        })
        .collect()
}

/// A replica rebuilt from watch events alone.
#[derive(Default)]
struct Replica {
    services: BTreeMap<String, Service>,
    tasks: BTreeMap<String, Task>,
    version: u64,
}

impl Replica {
    fn drain(&mut self, w: &mut Watcher) {
        while let Some(e) = w.try_recv().unwrap() {
            match e {
                Event::Created(o) => self.put(&o, None),
                Event::Updated { old, new } => self.put(&new, Some(&old)),
                Event::Deleted(o) => {
                    match o {
                        AnyObject::Service(s) => {
                            assert_eq!(self.services.remove(&s.id).as_ref(), Some(&*s))
                        }
                        AnyObject::Task(t) => {
                            assert_eq!(self.tasks.remove(&t.id).as_ref(), Some(&*t))
                        }
                        other => panic!("unexpected {other:?}"),
                    };
                }
                Event::Commit { version } => {
                    assert!(version > self.version, "commit versions increase");
                    self.version = version;
                }
            }
        }
    }

    fn put(&mut self, o: &AnyObject, old: Option<&AnyObject>) {
        match (o, old) {
            (AnyObject::Service(s), old) => {
                let prev = self.services.insert(s.id.clone(), (**s).clone());
                assert_eq!(
                    prev.map(|p| AnyObject::Service(p.into())).as_ref(),
                    old,
                    "old matches"
                );
            }
            (AnyObject::Task(t), old) => {
                let prev = self.tasks.insert(t.id.clone(), (**t).clone());
                assert_eq!(
                    prev.map(|p| AnyObject::Task(p.into())).as_ref(),
                    old,
                    "old matches"
                );
            }
            (other, _) => panic!("unexpected {other:?}"),
        }
    }
}

fn check(store: &Store, model: &Model, replica: &Replica) {
    let view = store.view();
    assert_eq!(view.version(), model.version);
    let services: BTreeMap<String, Service> = view
        .all::<Service>()
        .iter()
        .map(|s| (s.id.clone(), (**s).clone()))
        .collect();
    let tasks: BTreeMap<String, Task> = view
        .all::<Task>()
        .iter()
        .map(|t| (t.id.clone(), (**t).clone()))
        .collect();
    assert_eq!(services, model.services);
    assert_eq!(tasks, model.tasks);
    assert_eq!(replica.services, model.services);
    assert_eq!(replica.tasks, model.tasks);
    assert_eq!(replica.version, model.version);

    let ids = |v: Vec<std::sync::Arc<Task>>| v.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    for s in SERVICE_IDS {
        let want: Vec<String> = model
            .tasks
            .values()
            .filter(|t| t.service_id == s)
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(ids(view.find(By::ServiceId(s)).unwrap()), want);
        for slot in 1..4 {
            let want: Vec<String> = model
                .tasks
                .values()
                .filter(|t| t.service_id == s && t.slot == slot)
                .map(|t| t.id.clone())
                .collect();
            assert_eq!(ids(view.find(By::Slot(s, slot)).unwrap()), want);
        }
    }
    for n in NODES {
        let want: Vec<String> = model
            .tasks
            .values()
            .filter(|t| t.node_id == n)
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(ids(view.find(By::NodeId(n)).unwrap()), want);
    }
    for d in DESIRED {
        let want: Vec<String> = model
            .tasks
            .values()
            .filter(|t| t.desired_state() == d)
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(ids(view.find(By::DesiredState(d)).unwrap()), want);
    }
    for name in SERVICE_NAMES {
        let want: Vec<&String> = model
            .services
            .values()
            .filter(|s| service_name(s) == name.to_lowercase())
            .map(|s| &s.id)
            .collect();
        let got = view
            .find::<Service>(By::Name(&name.to_uppercase()))
            .unwrap();
        assert_eq!(got.iter().map(|s| &s.id).collect::<Vec<_>>(), want);
    }
    let labelled: Vec<&String> = model
        .services
        .values()
        .filter(|s| {
            s.spec
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()
                .labels
                .contains_key("tier")
        })
        .map(|s| &s.id)
        .collect();
    let got = view.find::<Service>(By::Label("tier", None)).unwrap();
    assert_eq!(got.iter().map(|s| &s.id).collect::<Vec<_>>(), labelled);
    let got = view
        .find::<Service>(By::Label("tier", Some("front")))
        .unwrap();
    assert_eq!(got.iter().map(|s| &s.id).collect::<Vec<_>>(), labelled);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(steps in prop::collection::vec(step(), 1..25)) {
        let rt = rt();
        let clock = ManualClock::new(1_000);
        let store = Store::with_clock(clock.clone());
        let mut watcher = store.watch(WatchFilter::all());
        let mut model = Model::default();
        let mut replica = Replica::default();
        for step in steps {
            clock.advance(1);
            match step {
                Step::Update(ops) => {
                    let mut mtx = ModelTx { state: model.clone(), version: model.version + 1, now: swarm_store::Clock::now(&clock), first: BTreeMap::new() };
                    let expected: Result<(), &str> = ops.iter().try_for_each(|op| mtx.apply(op));
                    let got = rt.block_on(store.update(|tx| ops.iter().try_for_each(|op| run(tx, op))));
                    prop_assert_eq!(got.map_err(|e| err_name(&e)), expected);
                    if expected.is_ok() && changed(&model, &mtx.state, &touched_ids(&ops)) {
                        model = Model { version: model.version + 1, ..mtx.state };
                    }
                }
                Step::Batch(pieces) => {
                    let mut mtx = ModelTx { state: model.clone(), version: model.version + 1, now: swarm_store::Clock::now(&clock), first: BTreeMap::new() };
                    let mut expected = Vec::new();
                    let mut all_ops = Vec::new();
                    for piece in &pieces {
                        let saved = mtx.state.clone();
                        let saved_first = mtx.first.clone();
                        let r: Result<(), &str> = piece.iter().try_for_each(|op| mtx.apply(op));
                        if r.is_err() {
                            mtx.state = saved;
                            mtx.first = saved_first;
                        } else {
                            all_ops.extend(piece.iter().cloned());
                        }
                        expected.push(r);
                    }
                    let mut got = Vec::new();
                    rt.block_on(store.batch(|b| {
                        for piece in &pieces {
                            got.push(b.update(|tx| piece.iter().try_for_each(|op| run(tx, op))).map_err(|e| err_name(&e)));
                        }
                        Ok::<_, StoreError>(())
                    })).unwrap();
                    prop_assert_eq!(got, expected);
                    if changed(&model, &mtx.state, &touched_ids(&all_ops)) {
                        model = Model { version: model.version + 1, ..mtx.state };
                    }
                }
            }
            replica.drain(&mut watcher);
            check(&store, &model, &replica);
        }
    }
}
