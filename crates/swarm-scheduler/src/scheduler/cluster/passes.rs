//! Scheduling passes: pre-assigned tasks checked against their node, then
//! queued groups placed in arrival order.

use std::sync::Arc;
use std::time::SystemTime;

use super::{ClusterScheduler, GroupKey, Place};
use crate::policy::Policy;
use crate::scheduler::place::{GroupInput, place_group};
use crate::scheduler::{Assignment, Pass, Unplaced};

impl<P: Policy> ClusterScheduler<P> {
    /// Confirms or refuses pre-assigned tasks (global services) on their node.
    pub(super) fn schedule_preassigned(&mut self, now: SystemTime, pass: &mut Pass) {
        let ids: Vec<Arc<str>> = self.preassigned.iter().cloned().collect();
        for id in ids {
            let Some(rec) = self.tasks.get(&id) else {
                continue;
            };
            let Place::Preassigned { slot, failed_epoch } = rec.place else {
                continue;
            };
            if failed_epoch == Some(self.state.epoch) {
                continue;
            }
            let Some(s) = self.state.slot(slot).filter(|s| s.live) else {
                // Unknown node (maybe removed): SwarmKit leaves the task be.
                continue;
            };
            let Some(req) = self.state.reqs.get(rec.req).cloned() else {
                continue;
            };
            let (service, spec_version) = (rec.service, rec.spec_version);
            let service_id = self.state.service_id(service).to_string();
            let c = self.candidate(
                &s.info,
                self.state.service_tasks(service, slot),
                &service_id,
                spec_version,
                slot,
                now,
            );
            let enabled = self.pipeline.enabled_for(&req);
            match self.pipeline.first_refusal(&enabled, &req, &c) {
                Some(f) => {
                    let reason = self.pipeline.filters()[f].explain(1);
                    let epoch = self.state.epoch;
                    if let Some(rec) = self.tasks.get_mut(&id) {
                        rec.place = Place::Preassigned {
                            slot,
                            failed_epoch: Some(epoch),
                        };
                    }
                    pass.unplaced.push(Unplaced {
                        task_id: id.to_string(),
                        reason,
                    });
                }
                None => {
                    let node_id = s.info.id().to_string();
                    let held = self.state.attach(slot, service, &req, true, None);
                    self.preassigned.remove(&id);
                    if let Some(rec) = self.tasks.get_mut(&id) {
                        rec.place = Place::OnNode {
                            slot,
                            tentative: true,
                            preassigned: true,
                            held: held.clone(),
                        };
                    }
                    pass.assignments.push(Assignment {
                        task_id: id.to_string(),
                        node_id,
                        assigned_generic_resources: held,
                        preassigned: true,
                    });
                }
            }
        }
    }

    /// Places the queued groups, oldest first; parked groups wait for a
    /// capacity change.
    pub(super) fn schedule_groups(&mut self, now: SystemTime, pass: &mut Pass) {
        let mut order: Vec<(u64, GroupKey)> =
            self.groups.iter().map(|(k, g)| (g.seq, *k)).collect();
        order.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, key) in order {
            let tasks = &self.tasks;
            let queued = |stamp: u64, id: &Arc<str>| {
                tasks
                    .get(id)
                    .is_some_and(|r| matches!(r.place, Place::Queued { stamp: s } if s == stamp))
            };
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            if let Some((epoch, reason)) = &group.parked
                && *epoch == self.state.epoch
            {
                // Nothing that could help has changed: only newcomers need
                // the reason.
                for (stamp, id) in &group.tasks[group.fresh_from.min(group.tasks.len())..] {
                    if queued(*stamp, id) {
                        pass.unplaced.push(Unplaced {
                            task_id: id.to_string(),
                            reason: reason.clone(),
                        });
                    }
                }
                // Tasks that left meanwhile leave stale entries: compact
                // now and then.
                if group.tasks.len() > 2 * group.live + 64 {
                    group.tasks.retain(|(stamp, id)| queued(*stamp, id));
                }
                group.fresh_from = group.tasks.len();
                continue;
            }
            // Every entry is current unless tasks left the queue.
            if group.tasks.len() != group.live {
                group.tasks.retain(|(stamp, id)| queued(*stamp, id));
                group.live = group.tasks.len();
            }
            let task_ids: Vec<Arc<str>> = group.tasks.iter().map(|(_, id)| id.clone()).collect();
            let Some(req) = self.state.reqs.get(key.req).cloned() else {
                continue;
            };
            let outcome = place_group(
                &self.policy,
                &self.pipeline,
                &mut self.state,
                &mut self.scratch,
                &GroupInput {
                    req: &req,
                    service: key.service,
                    spec_version: key.spec_version,
                    tasks: task_ids.len(),
                    now,
                    failure_rule: self.failure_rule,
                },
            );
            // Tasks are handed out in queue order: the first `placed` ones
            // went.
            let placed = outcome.placed.len();
            for (i, slot, held) in outcome.placed {
                let id = &task_ids[i];
                self.state.ref_slot(slot);
                if let Some(rec) = self.tasks.get_mut(id) {
                    rec.place = Place::OnNode {
                        slot,
                        tentative: true,
                        preassigned: false,
                        held: held.clone(),
                    };
                }
                pass.assignments.push(Assignment {
                    task_id: id.to_string(),
                    node_id: self
                        .state
                        .slot(slot)
                        .map(|s| s.info.id().to_string())
                        .unwrap_or_default(),
                    assigned_generic_resources: held,
                    preassigned: false,
                });
            }
            match outcome.explanation {
                None => {
                    self.groups.remove(&key);
                }
                Some(explanation) => {
                    let Some(group) = self.groups.get_mut(&key) else {
                        continue;
                    };
                    group.tasks.drain(..placed.min(group.tasks.len()));
                    group.live = group.tasks.len();
                    group.fresh_from = group.tasks.len();
                    let reason = crate::filter::no_suitable_node(&explanation);
                    for (_, id) in &group.tasks {
                        pass.unplaced.push(Unplaced {
                            task_id: id.to_string(),
                            reason: reason.clone(),
                        });
                    }
                    group.parked = Some((self.state.epoch, reason));
                    if group.tasks.is_empty() {
                        self.groups.remove(&key);
                    }
                }
            }
        }
    }
}
