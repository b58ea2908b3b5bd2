//! Tasks: inspect, list with filters, remove.

use swarm_api::v1::*;
use swarm_store::By;

use super::filters::matches;
use super::{ControlService, Fail, Local};

impl ControlService {
    pub(crate) fn get_task_local(&self, req: GetTaskRequest) -> Local<GetTaskResponse> {
        let t = self
            .store
            .view()
            .lookup::<Task>(&req.task_id)
            .map_err(Fail::from)?;
        Ok(GetTaskResponse {
            task: Some((*t).clone()),
        })
    }

    pub(crate) fn list_tasks_local(&self, req: ListTasksRequest) -> Local<ListTasksResponse> {
        let view = self.store.view();
        // Narrow with an index when the filter allows it.
        let candidates = if let [service] = req.service_ids.as_slice() {
            view.find::<Task>(By::ServiceId(service))
                .map_err(Fail::from)?
        } else if let [node] = req.node_ids.as_slice() {
            view.find::<Task>(By::NodeId(node)).map_err(Fail::from)?
        } else {
            view.all::<Task>()
        };
        let tasks = candidates
            .iter()
            .filter(|t| matches(req.filters.as_ref(), &t.id, t.annotations.as_ref()))
            .filter(|t| req.service_ids.is_empty() || req.service_ids.contains(&t.service_id))
            .filter(|t| req.node_ids.is_empty() || req.node_ids.contains(&t.node_id))
            .filter(|t| {
                req.desired_states.is_empty() || req.desired_states.contains(&t.desired_state)
            })
            .map(|t| (**t).clone())
            .collect();
        Ok(ListTasksResponse { tasks })
    }

    pub(crate) async fn remove_task_local(
        &self,
        req: RemoveTaskRequest,
    ) -> Local<RemoveTaskResponse> {
        self.store
            .update(|tx| {
                let t = tx.lookup::<Task>(&req.task_id)?;
                tx.delete::<Task>(&t.id).map(drop)
            })
            .await?;
        Ok(RemoveTaskResponse {})
    }
}
