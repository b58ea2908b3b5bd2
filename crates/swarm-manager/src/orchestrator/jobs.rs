//! The job orchestrators: replicated jobs run `total_completions` tasks to
//! completion, at most `max_concurrent` at a time; global jobs run one task
//! to completion on every eligible node. A spec change starts a new job
//! iteration (the service's spec version): tasks of older iterations that
//! still run are stopped.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use swarm_api::v1::{ReplicatedJob, Service, Task, TaskState};

use super::plan::{Group, Plan};
use super::restart::{self, Decision};
use super::service::{Ctx, constraints, node_fit, task_for};
use super::slots::{Role, Slot, SlotKey, group};

fn iteration(t: &Task) -> u64 {
    t.job_iteration.as_ref().map_or(0, |j| j.index)
}

/// Splits off the tasks of older iterations, stopping those still wanted.
fn current_iteration(svc: &Service, tasks: &[Arc<Task>], g: &mut Group) -> Vec<Arc<Task>> {
    let mut now = Vec::new();
    for t in tasks {
        if iteration(t) == svc.spec_version {
            now.push(t.clone());
        } else {
            g.set_desired(t, TaskState::Shutdown);
        }
    }
    now
}

/// How a job slot stands.
enum JobSlot {
    /// A task runs (or is about to).
    Active,
    /// Its task completed.
    Completed,
    /// Its task failed and will not be restarted.
    GaveUp,
}

/// Tends one slot of a job: replaces lost tasks, restarts failed ones.
fn tend(ctx: &Ctx<'_>, svc: &Service, slot: &Slot, g: &mut Group, plan: &mut Plan) -> JobSlot {
    if slot.has(Role::Live) {
        return JobSlot::Active;
    }
    let lost: Vec<&Arc<Task>> = slot.with(Role::Lost).collect();
    if !lost.is_empty() {
        for t in &lost {
            g.set_desired(t, TaskState::Shutdown);
        }
        if matches!(slot.key, SlotKey::Replica(_)) {
            g.creates.push(task_for(
                svc,
                &slot.key,
                TaskState::Complete,
                BTreeMap::new(),
                ctx.now,
            ));
            return JobSlot::Active;
        }
        return JobSlot::GaveUp;
    }
    let Some(ended) = slot.with(Role::Ended).next() else {
        return JobSlot::Active;
    };
    if ended.state() == TaskState::Complete {
        return JobSlot::Completed;
    }
    match restart::decide(ended, true, ctx.now) {
        Decision::Now(labels) => {
            g.set_desired(ended, TaskState::Shutdown);
            g.creates.push(task_for(
                svc,
                &slot.key,
                TaskState::Complete,
                labels,
                ctx.now,
            ));
            JobSlot::Active
        }
        Decision::At(at) => {
            plan.wake_at(at);
            JobSlot::Active
        }
        Decision::Never => JobSlot::GaveUp,
    }
}

/// Reconciles a replicated job.
pub(crate) fn replicated(
    ctx: &Ctx<'_>,
    svc: &Service,
    tasks: &[Arc<Task>],
    job: &ReplicatedJob,
    plan: &mut Plan,
) -> Group {
    let mut g = Group::default();
    let tasks = current_iteration(svc, tasks, &mut g);
    let concurrent = job.max_concurrent.max(1);
    let total = if job.total_completions == 0 {
        concurrent
    } else {
        job.total_completions
    };
    let slots = group(&tasks, ctx.nodes, false);
    let (mut active, mut settled) = (0u64, 0u64);
    let mut used: HashSet<u64> = HashSet::new();
    for s in slots.values() {
        if !(s.occupied() || s.has(Role::Leaving)) {
            continue;
        }
        if let SlotKey::Replica(n) = s.key {
            used.insert(n);
        }
        match tend(ctx, svc, s, &mut g, plan) {
            JobSlot::Active => active += 1,
            JobSlot::Completed | JobSlot::GaveUp => settled += 1,
        }
    }
    let room = concurrent.saturating_sub(active);
    let left = total.saturating_sub(settled + active);
    let mut next = 1;
    for _ in 0..room.min(left) {
        while used.contains(&next) {
            next += 1;
        }
        used.insert(next);
        g.creates.push(task_for(
            svc,
            &SlotKey::Replica(next),
            TaskState::Complete,
            BTreeMap::new(),
            ctx.now,
        ));
    }
    g
}

/// Reconciles a global job: one completion per eligible node.
pub(crate) fn global(ctx: &Ctx<'_>, svc: &Service, tasks: &[Arc<Task>], plan: &mut Plan) -> Group {
    let mut g = Group::default();
    let tasks = current_iteration(svc, tasks, &mut g);
    let slots = group(&tasks, ctx.nodes, true);
    let cs = constraints(svc);
    for node in ctx.nodes.all() {
        let key = SlotKey::Node(node.id.clone());
        let (_, start) = node_fit(node, ctx.nodes, cs.as_deref());
        match slots.get(&key) {
            Some(s) if s.occupied() => {
                tend(ctx, svc, s, &mut g, plan);
            }
            _ if start => g.creates.push(task_for(
                svc,
                &key,
                TaskState::Complete,
                BTreeMap::new(),
                ctx.now,
            )),
            _ => {}
        }
    }
    g
}
