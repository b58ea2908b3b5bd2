//! One reconcile pass: reads a consistent view, decides, and commits the
//! decisions per service.

use std::collections::HashSet;
use std::time::SystemTime;

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::{Node, Service, Task, TaskState};
use swarm_store::{By, ReadTx, Store, StoreError, Tx};

use super::plan::{Group, Plan};
use super::reaper::{reap, retention};
use super::service::{Ctx, reconcile};
use super::slots::Nodes;

/// Which services a pass looks at.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    /// Every service and every task (after node or cluster changes).
    All,
    /// These service ids only (after changes to them or their tasks).
    Services(HashSet<String>),
}

impl Scope {
    /// Adds a service to the scope.
    pub(crate) fn add(&mut self, id: &str) {
        if let Scope::Services(s) = self {
            s.insert(id.to_string());
        }
    }
}

fn is_global(svc: &Service) -> bool {
    matches!(
        svc.spec.as_ref().and_then(|s| s.mode.as_ref()),
        Some(Mode::Global(_) | Mode::GlobalJob(_))
    )
}

/// Decides what the services in scope need.
pub(crate) fn plan(view: &ReadTx, scope: &Scope, now: SystemTime) -> Plan {
    let nodes = Nodes::new(view.all::<Node>());
    let limit = retention(view);
    let ctx = Ctx { nodes: &nodes, now };
    let mut plan = Plan::default();
    let ids: Vec<String> = match scope {
        Scope::All => {
            let mut ids: HashSet<String> =
                view.all::<Service>().iter().map(|s| s.id.clone()).collect();
            // Services that are gone but still have tasks.
            ids.extend(view.all::<Task>().iter().map(|t| t.service_id.clone()));
            ids.into_iter().collect()
        }
        Scope::Services(s) => s.iter().cloned().collect(),
    };
    for id in ids {
        if id.is_empty() {
            continue;
        }
        let tasks = view.find::<Task>(By::ServiceId(&id)).unwrap_or_default();
        match view.get::<Service>(&id) {
            Some(svc) => {
                let mut g = reconcile(&ctx, &svc, &tasks, &mut plan);
                reap(&tasks, &nodes, is_global(&svc), false, limit, &mut g);
                plan.push(g);
            }
            None => {
                let mut g = Group::default();
                reap(&tasks, &nodes, false, true, limit, &mut g);
                plan.push(g);
            }
        }
    }
    plan
}

/// Changes per atomic piece of a group. A group can be far larger than one
/// raft proposal (a service of 10,000 replicas created, scaled down or
/// removed at once), so it is written in pieces of this many task changes.
const PIECE: usize = 100;

/// One task change of a group.
enum Change<'a> {
    Desired(&'a str, TaskState),
    Delete(&'a str),
    Create(&'a Task),
}

fn changes(g: &Group) -> Vec<Change<'_>> {
    let desired = g.desired.iter().map(|(id, s)| Change::Desired(id, *s));
    let deletes = g.deletes.iter().map(|id| Change::Delete(id));
    let creates = g.creates.iter().map(Change::Create);
    desired.chain(deletes).chain(creates).collect()
}

fn apply(tx: &mut Tx, c: &Change<'_>) -> Result<(), StoreError> {
    match c {
        Change::Desired(id, state) => {
            let Some(t) = tx.get::<Task>(id) else {
                return Ok(());
            };
            if t.desired_state() < *state {
                let mut t = (*t).clone();
                t.set_desired_state(*state);
                tx.update(t)?;
            }
        }
        Change::Delete(id) => {
            if tx.get::<Task>(id).is_some() {
                tx.delete::<Task>(id)?;
            }
        }
        Change::Create(t) => {
            tx.create((*t).clone())?;
        }
    }
    Ok(())
}

/// Commits a plan; returns how many groups could not be written (a
/// concurrent writer got there first: the next pass decides again).
///
/// Each group is written in atomic pieces of [`PIECE`] task changes; the
/// first piece carries the service write, so a group whose service moved
/// since the pass read it is dropped whole. A later piece that fails stops
/// its group there: what was written stays, and the next pass, which
/// decides from the store alone, carries on from it.
pub(crate) async fn commit(store: &Store, plan: &Plan) -> usize {
    let mut failed = 0;
    let result = store
        .batch(|b| {
            for g in &plan.groups {
                let changes = changes(g);
                let mut pieces = changes.chunks(PIECE);
                let first = pieces.next().unwrap_or_default();
                let written = b.update(|tx| {
                    if let Some(s) = &g.service {
                        tx.update(s.clone())?;
                    }
                    first.iter().try_for_each(|c| apply(tx, c))
                });
                if let Err(e) = written {
                    tracing::debug!(error = %e, "orchestrator change not applied; retrying");
                    failed += 1;
                    continue;
                }
                for piece in pieces {
                    if let Err(e) = b.update(|tx| piece.iter().try_for_each(|c| apply(tx, c))) {
                        tracing::debug!(error = %e, "orchestrator change not applied; retrying");
                        failed += 1;
                        break;
                    }
                }
            }
            Ok::<(), StoreError>(())
        })
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "orchestrator batch not committed; retrying");
        failed += 1;
    }
    failed
}

/// Tasks by service, for tests and diagnostics.
#[cfg(test)]
pub(crate) fn by_service(
    view: &ReadTx,
) -> std::collections::BTreeMap<String, Vec<std::sync::Arc<Task>>> {
    let mut out: std::collections::BTreeMap<String, Vec<std::sync::Arc<Task>>> =
        std::collections::BTreeMap::new();
    for t in view.all::<Task>() {
        out.entry(t.service_id.clone()).or_default().push(t);
    }
    out
}

/// True when the task is wanted running (or to complete).
#[cfg(test)]
pub(crate) fn wanted(t: &Task) -> bool {
    t.desired_state() <= swarm_api::v1::TaskState::Complete
}
