//! The rolling updater: replaces tasks made from an older spec, a few at
//! a time (parallelism), waiting between batches (delay) and watching new
//! tasks for a while (monitor); on failures it pauses, continues or rolls
//! back (failure action). Its state is the service's update status and the
//! tasks themselves, so a new leader resumes an update where it stood.

use std::sync::Arc;
use std::time::SystemTime;

use swarm_api::v1::{FailureAction, Service, Task, TaskState, UpdateState, UpdateStatus};

use super::plan::{Group, Plan};
use super::slots::{SlotKey, created, status_time};

/// A slot as the updater sees it.
#[derive(Debug)]
pub(crate) struct UpdSlot {
    /// Which slot.
    pub(crate) key: SlotKey,
    /// The task that runs there (or will).
    pub(crate) keeper: Arc<Task>,
    /// The keeper is made from an older spec.
    pub(crate) dirty: bool,
    /// A replacement is under way: old task stopping, new one not running
    /// yet, or running for less than the monitor period.
    pub(crate) busy: bool,
}

/// True when the task is made from the service's current task spec.
pub(crate) fn current(svc: &Service, t: &Task) -> bool {
    let spec = svc.spec.as_ref().and_then(|s| s.task.as_ref());
    t.spec.as_ref() == spec
}

fn state(svc: &Service) -> Option<UpdateState> {
    svc.update_status.as_ref().map(|u| u.state())
}

fn rolling_back(svc: &Service) -> bool {
    matches!(
        state(svc),
        Some(UpdateState::RollbackStarted | UpdateState::RollbackPaused)
    )
}

fn started(svc: &Service) -> SystemTime {
    svc.update_status
        .as_ref()
        .and_then(|u| u.started_at.as_ref())
        .map_or(SystemTime::UNIX_EPOCH, |t| t.to_system_time())
}

/// The update config in force (the rollback config while rolling back).
pub(crate) fn config(svc: &Service) -> swarm_api::v1::UpdateConfig {
    let spec = svc.spec.clone().unwrap_or_default();
    if rolling_back(svc) {
        swarm_api::defaults::update_config(spec.rollback.as_ref())
    } else {
        swarm_api::defaults::update_config(spec.update.as_ref())
    }
}

/// True when a current task running since `since` is still being watched.
pub(crate) fn monitoring(svc: &Service, t: &Task, now: SystemTime, plan: &mut Plan) -> bool {
    if created(t) < started(svc) || !current(svc, t) {
        return false;
    }
    let monitor = config(svc)
        .monitor
        .and_then(|m| m.to_std().ok())
        .unwrap_or_default();
    let until = status_time(t) + monitor;
    if t.state() == TaskState::Running && now < until {
        plan.wake_at(until);
        return true;
    }
    false
}

fn with_status(svc: &Service, state: UpdateState, message: String, now: SystemTime) -> Service {
    let mut s = svc.clone();
    let done = matches!(
        state,
        UpdateState::Completed | UpdateState::RollbackCompleted
    );
    let previous = s.update_status.take().unwrap_or_default();
    s.update_status = Some(UpdateStatus {
        state: state.into(),
        started_at: previous.started_at.or(Some(now.into())),
        completed_at: done.then(|| now.into()),
        message,
    });
    s
}

/// Rolls the spec back to the previous one (as `service rollback` does).
fn rollback(svc: &Service, message: String, now: SystemTime) -> Service {
    let mut s = svc.clone();
    if let Some(previous) = s.previous_spec.take() {
        let current = s.spec.replace(previous);
        s.previous_spec = current;
        s.previous_spec_version = s.spec_version;
        s.spec_version += 1;
    }
    s.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted.into(),
        started_at: Some(now.into()),
        completed_at: None,
        message,
    });
    s
}

/// One step of the update: records status changes in `group` and returns
/// the slots whose keeper should be replaced now. `filling` slots are being
/// given a new task by this same pass (they count as in progress).
pub(crate) fn step(
    svc: &Service,
    tasks: &[Arc<Task>],
    slots: &[UpdSlot],
    filling: usize,
    now: SystemTime,
    group: &mut Group,
    plan: &mut Plan,
) -> Vec<SlotKey> {
    let st = state(svc);
    if matches!(st, Some(UpdateState::Paused | UpdateState::RollbackPaused)) {
        return Vec::new();
    }
    let cfg = config(svc);
    let updating = matches!(
        st,
        Some(UpdateState::Updating | UpdateState::RollbackStarted)
    );
    if updating && cfg.failure_action() != FailureAction::Continue {
        let since = started(svc);
        let failed: Vec<&Arc<Task>> = tasks
            .iter()
            .filter(|t| {
                created(t) >= since
                    && current(svc, t)
                    && matches!(t.state(), TaskState::Failed | TaskState::Rejected)
            })
            .collect();
        #[expect(clippy::cast_precision_loss, reason = "slot counts are small")]
        let allowed = cfg.max_failure_ratio * slots.len() as f32;
        #[expect(clippy::cast_precision_loss, reason = "failure counts are small")]
        let too_many = !failed.is_empty() && failed.len() as f32 > allowed;
        if too_many {
            let culprit = failed[0];
            let why = culprit
                .status
                .as_ref()
                .map(|s| {
                    if s.err.is_empty() {
                        s.message.clone()
                    } else {
                        s.err.clone()
                    }
                })
                .unwrap_or_default();
            let message = format!("task {} failed during the update: {why}", culprit.id);
            group.service = Some(match (cfg.failure_action(), rolling_back(svc)) {
                (FailureAction::Rollback, false) if svc.previous_spec.is_some() => {
                    rollback(svc, format!("update rolled back: {message}"), now)
                }
                (_, true) => with_status(
                    svc,
                    UpdateState::RollbackPaused,
                    format!("rollback paused: {message}"),
                    now,
                ),
                _ => with_status(
                    svc,
                    UpdateState::Paused,
                    format!("update paused: {message}"),
                    now,
                ),
            });
            return Vec::new();
        }
    }
    let busy = slots.iter().filter(|s| s.busy).count() + filling;
    let mut dirty: Vec<&UpdSlot> = slots.iter().filter(|s| s.dirty && !s.busy).collect();
    if dirty.is_empty() {
        if busy == 0 && updating {
            let (state, message) = if rolling_back(svc) {
                (UpdateState::RollbackCompleted, "rollback completed")
            } else {
                (UpdateState::Completed, "update completed")
            };
            group.service = Some(with_status(svc, state, message.into(), now));
        }
        return Vec::new();
    }
    // Wait `delay` after the last batch came up before starting the next.
    let delay = cfg.delay.and_then(|d| d.to_std().ok()).unwrap_or_default();
    if !delay.is_zero() {
        let since = started(svc);
        let last_up = slots
            .iter()
            .filter(|s| !s.dirty && created(&s.keeper) >= since)
            .map(|s| status_time(&s.keeper))
            .max();
        if let Some(last) = last_up
            && busy == 0
            && now < last + delay
        {
            plan.wake_at(last + delay);
            return Vec::new();
        }
    }
    let room = match cfg.parallelism {
        0 => dirty.len(),
        p => usize::try_from(p)
            .unwrap_or(usize::MAX)
            .saturating_sub(busy),
    };
    // Tasks that are not running go first: replacing them costs nothing.
    dirty.sort_by_key(|s| (s.keeper.state() == TaskState::Running, s.key.clone()));
    dirty
        .into_iter()
        .take(room)
        .map(|s| s.key.clone())
        .collect()
}
