//! Reconciling a long-running service: the replicated orchestrator (N
//! slots), the global orchestrator (one slot per eligible node), and what
//! both share: tending a slot (deduplicate, replace lost tasks, restart
//! ended ones) and rolling updates.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::{Node, NodeAvailability, Service, Task, TaskState, UpdateOrder};
use swarm_scheduler::NodeInfo;
use swarm_scheduler::constraint::{Constraint, matches_all, parse_all};

use super::new_task::new_task;
use super::plan::{Group, Plan};
use super::restart::{self, Decision};
use super::slots::{Nodes, Role, Slot, SlotKey, group};
use super::update::{self, UpdSlot, current, monitoring};

/// What a pass knows besides the service and its tasks.
pub(crate) struct Ctx<'a> {
    /// The cluster's nodes.
    pub(crate) nodes: &'a Nodes,
    /// The time of the pass.
    pub(crate) now: SystemTime,
}

/// Reconciles one service; returns the changes for it.
pub(crate) fn reconcile(
    ctx: &Ctx<'_>,
    svc: &Service,
    tasks: &[Arc<Task>],
    plan: &mut Plan,
) -> Group {
    let mode = svc.spec.as_ref().and_then(|s| s.mode.as_ref());
    match mode {
        Some(Mode::Replicated(r)) => replicated(ctx, svc, tasks, r.replicas, plan),
        Some(Mode::Global(_)) => global(ctx, svc, tasks, plan),
        Some(Mode::ReplicatedJob(j)) => super::jobs::replicated(ctx, svc, tasks, j, plan),
        Some(Mode::GlobalJob(_)) => super::jobs::global(ctx, svc, tasks, plan),
        None => Group::default(),
    }
}

/// Makes a task for a slot.
pub(crate) fn task_for(
    svc: &Service,
    key: &SlotKey,
    desired: TaskState,
    labels: BTreeMap<String, String>,
    now: SystemTime,
) -> Task {
    match key {
        SlotKey::Replica(n) => new_task(svc, *n, "", desired, labels, now),
        SlotKey::Node(node) => new_task(svc, 0, node, desired, labels, now),
    }
}

/// Keeps one task in a slot and decides what the rest of it needs.
/// Returns the slot as the updater sees it when it has a task running or
/// about to run.
pub(crate) fn tend(
    ctx: &Ctx<'_>,
    svc: &Service,
    slot: &Slot,
    g: &mut Group,
    plan: &mut Plan,
) -> Option<UpdSlot> {
    let live: Vec<&Arc<Task>> = slot.with(Role::Live).collect();
    if !live.is_empty() {
        for t in slot.with(Role::Lost).chain(slot.with(Role::Ended)) {
            g.set_desired(t, TaskState::Shutdown);
        }
        let (cur, old): (Vec<&Arc<Task>>, Vec<&Arc<Task>>) =
            live.into_iter().partition(|t| current(svc, t));
        if let Some(keeper) = cur
            .iter()
            .find(|t| t.state() == TaskState::Running)
            .copied()
        {
            for t in cur.iter().chain(old.iter()).filter(|t| t.id != keeper.id) {
                g.set_desired(t, TaskState::Shutdown);
            }
            let busy = monitoring(svc, keeper, ctx.now, plan);
            return Some(UpdSlot {
                key: slot.key.clone(),
                keeper: keeper.clone(),
                dirty: false,
                busy,
            });
        }
        if let Some(keeper) = cur.first().copied() {
            for t in cur.iter().skip(1) {
                g.set_desired(t, TaskState::Shutdown);
            }
            // Start-first: the old task runs until the new one does.
            let start_first = update::config(svc).order() == UpdateOrder::StartFirst;
            for t in &old {
                if !(start_first && t.state() == TaskState::Running) {
                    g.set_desired(t, TaskState::Shutdown);
                }
            }
            return Some(UpdSlot {
                key: slot.key.clone(),
                keeper: keeper.clone(),
                dirty: false,
                busy: true,
            });
        }
        let keeper = old
            .iter()
            .find(|t| t.state() == TaskState::Running)
            .or(old.first())
            .copied()?;
        for t in old.iter().filter(|t| t.id != keeper.id) {
            g.set_desired(t, TaskState::Shutdown);
        }
        return Some(UpdSlot {
            key: slot.key.clone(),
            keeper: keeper.clone(),
            dirty: true,
            busy: slot.has(Role::Stopping),
        });
    }
    let lost: Vec<&Arc<Task>> = slot.with(Role::Lost).collect();
    if !lost.is_empty() {
        // Its node went down or was drained: replace it at once (not a
        // failure of the task, so no restart delay or attempt counted).
        for t in lost.iter().copied().chain(slot.with(Role::Ended)) {
            g.set_desired(t, TaskState::Shutdown);
        }
        if matches!(slot.key, SlotKey::Replica(_)) {
            g.creates.push(task_for(
                svc,
                &slot.key,
                TaskState::Running,
                BTreeMap::new(),
                ctx.now,
            ));
        }
        return None;
    }
    if let Some(stopping) = slot.with(Role::Stopping).next() {
        // Stop-first replacement: the new task waits for the old to stop.
        return Some(UpdSlot {
            key: slot.key.clone(),
            keeper: stopping.clone(),
            dirty: false,
            busy: true,
        });
    }
    let ended = slot.with(Role::Ended).next()?;
    match restart::decide(ended, false, ctx.now) {
        Decision::Now(labels) => {
            for t in slot.with(Role::Ended) {
                g.set_desired(t, TaskState::Shutdown);
            }
            g.creates.push(task_for(
                svc,
                &slot.key,
                TaskState::Running,
                labels,
                ctx.now,
            ));
            return None;
        }
        Decision::At(at) => plan.wake_at(at),
        Decision::Never => {}
    }
    // Made from an older spec: the updater may replace it sooner.
    (!current(svc, ended)).then(|| UpdSlot {
        key: slot.key.clone(),
        keeper: ended.clone(),
        dirty: true,
        busy: false,
    })
}

/// Applies the updater's picks: stop-first shuts the old task down (the
/// slot is refilled once it stopped), start-first starts the new one
/// beside it.
fn replace(svc: &Service, picks: &[SlotKey], slots: &[UpdSlot], g: &mut Group, now: SystemTime) {
    let start_first = update::config(svc).order() == UpdateOrder::StartFirst;
    for key in picks {
        let Some(s) = slots.iter().find(|s| s.key == *key) else {
            continue;
        };
        if start_first {
            g.creates
                .push(task_for(svc, key, TaskState::Running, BTreeMap::new(), now));
        } else {
            g.set_desired(&s.keeper, TaskState::Shutdown);
        }
    }
}

fn replicated(
    ctx: &Ctx<'_>,
    svc: &Service,
    tasks: &[Arc<Task>],
    replicas: u64,
    plan: &mut Plan,
) -> Group {
    let mut g = Group::default();
    let slots = group(tasks, ctx.nodes, false);
    let mut occupied: Vec<&Slot> = slots.values().filter(|s| s.occupied()).collect();
    let want = usize::try_from(replicas).unwrap_or(usize::MAX);
    if occupied.len() > want {
        // Scale down as SwarmKit does: slots not running first, then those
        // on the nodes with the most tasks of the service, then the
        // highest numbers.
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        for s in &occupied {
            for t in s.with(Role::Live) {
                *per_node.entry(t.node_id.as_str()).or_default() += 1;
            }
        }
        occupied.sort_by_key(|s| {
            let live = s.with(Role::Live).next();
            let running = live.is_some_and(|t| t.state() == TaskState::Running);
            let load = live.map_or(0, |t| {
                per_node.get(t.node_id.as_str()).copied().unwrap_or(0)
            });
            (running, Reverse(load), Reverse(s.key.clone()))
        });
        for s in occupied.drain(..occupied.len() - want) {
            for (t, role) in &s.tasks {
                if matches!(role, Role::Live | Role::Lost | Role::Ended | Role::Stopping) {
                    g.set_desired(t, TaskState::Remove);
                }
            }
        }
    }
    let mut upd = Vec::new();
    for s in &occupied {
        if let Some(u) = tend(ctx, svc, s, &mut g, plan) {
            upd.push(u);
        }
    }
    let mut used: HashSet<u64> = slots
        .values()
        .filter(|s| s.occupied() || s.has(Role::Leaving))
        .filter_map(|s| match s.key {
            SlotKey::Replica(n) => Some(n),
            SlotKey::Node(_) => None,
        })
        .collect();
    let mut next = 1;
    let filling = want.saturating_sub(occupied.len());
    for _ in occupied.len()..want {
        while used.contains(&next) {
            next += 1;
        }
        used.insert(next);
        g.creates.push(new_task(
            svc,
            next,
            "",
            TaskState::Running,
            BTreeMap::new(),
            ctx.now,
        ));
    }
    let picks = update::step(svc, tasks, &upd, filling, ctx.now, &mut g, plan);
    replace(svc, &picks, &upd, &mut g, ctx.now);
    g
}

/// The placement constraints of a service, parsed; `None` when they do not
/// parse (the control API refuses such specs, so only old data has them).
pub(crate) fn constraints(svc: &Service) -> Option<Vec<Constraint>> {
    let placement = svc
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.placement.as_ref());
    match placement {
        None => Some(Vec::new()),
        Some(p) => match parse_all(&p.constraints) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(service = %svc.id, error = %e, "unusable placement constraints");
                None
            }
        },
    }
}

/// Whether a global service's task may stay on the node, and whether a new
/// one may start there (not on a paused node).
pub(crate) fn node_fit(node: &Node, nodes: &Nodes, cs: Option<&[Constraint]>) -> (bool, bool) {
    let Some(cs) = cs else {
        return (false, false);
    };
    let keep = nodes.usable(&node.id) && matches_all(cs, &NodeInfo::from_node(node));
    let active = node
        .spec
        .as_ref()
        .is_none_or(|s| s.availability() == NodeAvailability::Active);
    (keep, keep && active)
}

fn global(ctx: &Ctx<'_>, svc: &Service, tasks: &[Arc<Task>], plan: &mut Plan) -> Group {
    let mut g = Group::default();
    let slots = group(tasks, ctx.nodes, true);
    let cs = constraints(svc);
    let mut upd = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for node in ctx.nodes.all() {
        seen.insert(node.id.as_str());
        let key = SlotKey::Node(node.id.clone());
        let (keep, start) = node_fit(node, ctx.nodes, cs.as_deref());
        match slots.get(&key) {
            Some(s) if s.occupied() => {
                if keep {
                    if let Some(u) = tend(ctx, svc, s, &mut g, plan) {
                        upd.push(u);
                    }
                } else {
                    shut_all(s, &mut g);
                }
            }
            _ if start => g.creates.push(task_for(
                svc,
                &key,
                TaskState::Running,
                BTreeMap::new(),
                ctx.now,
            )),
            _ => {}
        }
    }
    for s in slots.values() {
        if let SlotKey::Node(n) = &s.key
            && !seen.contains(n.as_str())
        {
            shut_all(s, &mut g);
        }
    }
    let filling = g.creates.len();
    let picks = update::step(svc, tasks, &upd, filling, ctx.now, &mut g, plan);
    replace(svc, &picks, &upd, &mut g, ctx.now);
    g
}

/// Shuts down every wanted task of a slot (its node no longer fits).
pub(crate) fn shut_all(s: &Slot, g: &mut Group) {
    for (t, role) in &s.tasks {
        if matches!(role, Role::Live | Role::Lost | Role::Ended) {
            g.set_desired(t, TaskState::Shutdown);
        }
    }
}
