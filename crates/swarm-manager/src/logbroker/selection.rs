//! Which tasks a log subscription selects, resolved against the store:
//! service names become ids, and the selection tells which nodes to ask
//! and whether a task's lines belong to it.

use std::collections::{BTreeMap, BTreeSet};

use swarm_api::v1::{LogSelector, Node, Service, Task};
use swarm_store::{By, ReadTx};
use tonic::Status;

use crate::error::store_status;

/// A resolved selector: a task is selected when its service, its node or
/// its id is named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    services: BTreeSet<String>,
    nodes: BTreeSet<String>,
    tasks: BTreeSet<String>,
}

impl Selection {
    /// Resolves `selector` (services and nodes by id, name or unique id
    /// prefix; tasks by id). An unknown service is an error; unknown
    /// nodes and tasks select nothing.
    pub(crate) fn resolve(view: &ReadTx, selector: &LogSelector) -> Result<Self, Status> {
        let mut s = Selection::default();
        for key in &selector.service_ids {
            let service = view.lookup::<Service>(key).map_err(store_status)?;
            s.services.insert(service.id.clone());
        }
        for key in &selector.node_ids {
            let id = view
                .lookup::<Node>(key)
                .map_or_else(|_| key.clone(), |n| n.id.clone());
            s.nodes.insert(id);
        }
        s.tasks.extend(selector.task_ids.iter().cloned());
        if s.services.is_empty() && s.nodes.is_empty() && s.tasks.is_empty() {
            return Err(Status::invalid_argument(
                "select logs by service, node or task",
            ));
        }
        Ok(s)
    }

    /// True when `task`'s lines belong to the selection.
    pub(crate) fn selects(&self, task: &Task) -> bool {
        self.tasks.contains(&task.id)
            || self.services.contains(&task.service_id)
            || (!task.node_id.is_empty() && self.nodes.contains(&task.node_id))
    }

    /// The nodes to ask, each with its selected tasks: every node running
    /// a selected task, and every selected node (perhaps with none yet).
    pub(crate) fn targets(&self, view: &ReadTx) -> BTreeMap<String, BTreeSet<String>> {
        let mut tasks: Vec<std::sync::Arc<Task>> = Vec::new();
        for s in &self.services {
            tasks.extend(view.find::<Task>(By::ServiceId(s)).unwrap_or_default());
        }
        for n in &self.nodes {
            tasks.extend(view.find::<Task>(By::NodeId(n)).unwrap_or_default());
        }
        tasks.extend(self.tasks.iter().filter_map(|t| view.get::<Task>(t)));
        let mut by_node: BTreeMap<String, BTreeSet<String>> = self
            .nodes
            .iter()
            .map(|n| (n.clone(), BTreeSet::new()))
            .collect();
        for t in tasks {
            if !t.node_id.is_empty() {
                by_node
                    .entry(t.node_id.clone())
                    .or_default()
                    .insert(t.id.clone());
            }
        }
        by_node
    }

    /// A selection of these service ids (unit tests elsewhere).
    #[cfg(test)]
    pub(crate) fn for_tests(services: &[&str]) -> Self {
        Selection {
            services: services.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// What a node is told to serve: the services, itself if it is
    /// selected, and the selected tasks it runs (so that it also serves
    /// tasks it starts later, by service or node).
    pub(crate) fn for_node(&self, node: &str, tasks: &BTreeSet<String>) -> LogSelector {
        LogSelector {
            service_ids: self.services.iter().cloned().collect(),
            node_ids: if self.nodes.contains(node) {
                vec![node.to_string()]
            } else {
                Vec::new()
            },
            task_ids: tasks.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_api::v1::{Annotations, ServiceSpec};
    use swarm_store::Store;

    fn task(id: &str, service: &str, node: &str) -> Task {
        Task {
            id: id.into(),
            service_id: service.into(),
            node_id: node.into(),
            ..Default::default()
        }
    }

    async fn store() -> Store {
        let store = Store::new();
        store
            .update(|tx| {
                tx.create(Service {
                    id: "svc1".into(),
                    spec: Some(ServiceSpec {
                        annotations: Some(Annotations {
                            name: "web".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })?;
                tx.create(task("t1", "svc1", "n1"))?;
                tx.create(task("t2", "svc1", "n2"))?;
                tx.create(task("t3", "svc1", ""))?;
                tx.create(task("t4", "other", "n3"))?;
                tx.create(task("t5", "other", "n1"))?;
                Ok::<(), swarm_store::StoreError>(())
            })
            .await
            .unwrap();
        store
    }

    fn selector(services: &[&str], nodes: &[&str], tasks: &[&str]) -> LogSelector {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        LogSelector {
            service_ids: v(services),
            node_ids: v(nodes),
            task_ids: v(tasks),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|x| x.to_string()).collect()
    }

    #[tokio::test]
    async fn targets_by_service_node_and_task() {
        let store = store().await;
        let view = store.view();
        // (selector, nodes asked with their tasks)
        type Row = (
            LogSelector,
            &'static [(&'static str, &'static [&'static str])],
        );
        let table: [Row; 4] = [
            // A service by name: the nodes running its placed tasks.
            (
                selector(&["web"], &[], &[]),
                &[("n1", &["t1"]), ("n2", &["t2"])],
            ),
            // A node: all its tasks; a selected node with none is asked too.
            (
                selector(&[], &["n1", "n9"], &[]),
                &[("n1", &["t1", "t5"]), ("n9", &[])],
            ),
            // A task by id.
            (selector(&[], &[], &["t4"]), &[("n3", &["t4"])]),
            // An unplaced or unknown task: nobody to ask.
            (selector(&[], &[], &["t3", "nope"]), &[]),
        ];
        for (sel, want) in table {
            let s = Selection::resolve(&view, &sel).unwrap();
            let want: BTreeMap<String, BTreeSet<String>> =
                want.iter().map(|(n, t)| (n.to_string(), set(t))).collect();
            assert_eq!(s.targets(&view), want, "{sel:?}");
        }
    }

    #[tokio::test]
    async fn selects_and_what_a_node_is_told() {
        let store = store().await;
        let view = store.view();
        let s = Selection::resolve(&view, &selector(&["svc1"], &["n3"], &["t5"])).unwrap();
        for (t, want) in [
            (task("t1", "svc1", "n1"), true),
            (task("tx", "other", "n3"), true),
            (task("t5", "other", "n1"), true),
            (task("ty", "other", "n1"), false),
            (task("tz", "other", ""), false),
        ] {
            assert_eq!(s.selects(&t), want, "{t:?}");
        }
        let told = s.for_node("n3", &set(&["t4"]));
        assert_eq!(told, selector(&["svc1"], &["n3"], &["t4"]));
        let told = s.for_node("n1", &set(&["t1", "t5"]));
        assert_eq!(told, selector(&["svc1"], &[], &["t1", "t5"]));
    }

    #[tokio::test]
    async fn an_unknown_service_or_an_empty_selector_is_refused() {
        let store = store().await;
        let view = store.view();
        let e = Selection::resolve(&view, &selector(&["nope"], &[], &[])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
        let e = Selection::resolve(&view, &LogSelector::default()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
