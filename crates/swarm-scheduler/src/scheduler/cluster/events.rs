//! Store events: how each task update moves a task between the queue,
//! pre-assignment, a node, and oblivion.

use std::sync::Arc;
use std::time::SystemTime;

use swarm_api::v1::{Task, TaskState};

use super::{ClusterScheduler, Place, TaskRec};
use crate::policy::Policy;

impl<P: Policy> ClusterScheduler<P> {
    /// Applies one task event (SwarmKit's `createTask`/`updateTask`).
    pub(super) fn on_task(&mut self, task: &Task, now: SystemTime) {
        let state = task.state();
        let id = task.id.as_str();
        if state < TaskState::Pending {
            return;
        }
        let active = task.desired_state() <= TaskState::Complete;
        if state > TaskState::Running {
            if let Some(rec) = self.tasks.get(id) {
                let was_preassigned = matches!(
                    rec.place,
                    Place::Preassigned { .. }
                        | Place::OnNode {
                            preassigned: true,
                            ..
                        }
                );
                if state != rec.state
                    && matches!(state, TaskState::Failed | TaskState::Rejected)
                    && !was_preassigned
                    && let Some(slot) = self.state.lookup_node(&task.node_id)
                {
                    self.state.failures.record(
                        &task.service_id,
                        task.spec_version,
                        slot,
                        now,
                        self.failure_rule.window,
                    );
                }
                self.forget(id);
            }
            return;
        }
        if task.node_id.is_empty() {
            match self.tasks.get_mut(id) {
                Some(rec)
                    if matches!(rec.place, Place::Queued { .. })
                        && active
                        && state == TaskState::Pending =>
                {
                    rec.state = state;
                    return;
                }
                Some(_) => self.forget(id),
                None => {}
            }
            if state == TaskState::Pending && active {
                let (service, req) = self.intern(task);
                let key: Arc<str> = Arc::from(id);
                let stamp = self.enqueue(key.clone(), service, task.spec_version, req);
                self.tasks.insert(
                    key,
                    TaskRec {
                        service,
                        spec_version: task.spec_version,
                        req,
                        active,
                        state,
                        place: Place::Queued { stamp },
                    },
                );
            }
            return;
        }
        if state == TaskState::Pending {
            if let Some(rec) = self.tasks.get_mut(id)
                && let Place::Preassigned { slot, .. } = rec.place
                && self
                    .state
                    .slot(slot)
                    .is_some_and(|s| s.info.id() == task.node_id)
                && active
            {
                rec.state = state;
                return;
            }
            self.forget(id);
            if active {
                let (service, req) = self.intern(task);
                let slot = self.state.ref_node(&task.node_id);
                let key: Arc<str> = Arc::from(id);
                self.preassigned.insert(key.clone());
                self.tasks.insert(
                    key,
                    TaskRec {
                        service,
                        spec_version: task.spec_version,
                        req,
                        active,
                        state,
                        place: Place::Preassigned {
                            slot,
                            failed_epoch: None,
                        },
                    },
                );
            }
            return;
        }
        // ASSIGNED..RUNNING on a node.
        if let Some(rec) = self.tasks.get_mut(id)
            && let Place::OnNode {
                slot, tentative, ..
            } = &mut rec.place
            && self
                .state
                .slot(*slot)
                .is_some_and(|s| s.info.id() == task.node_id)
        {
            *tentative = false;
            rec.state = state;
            if rec.active != active {
                rec.active = active;
                let (slot, service) = (*slot, rec.service);
                self.state.set_active(slot, service, active);
            }
            return;
        }
        self.forget(id);
        let (service, req_id) = self.intern(task);
        let slot = self.state.ref_node(&task.node_id);
        let held = match self.state.reqs.get(req_id).cloned() {
            Some(req) => self.state.attach(
                slot,
                service,
                &req,
                active,
                Some(&task.assigned_generic_resources),
            ),
            None => Vec::new(),
        };
        self.tasks.insert(
            Arc::from(id),
            TaskRec {
                service,
                spec_version: task.spec_version,
                req: req_id,
                active,
                state,
                place: Place::OnNode {
                    slot,
                    tentative: false,
                    preassigned: false,
                    held,
                },
            },
        );
    }
}
