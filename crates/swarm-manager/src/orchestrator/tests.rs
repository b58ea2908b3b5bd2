//! Reconcile passes on a local store, with the agents' part played by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;
use swarm_store::{ReadTx, Store};

use super::pass::{Scope, by_service, commit, plan, wanted};

fn node(id: &str, state: NodeState, availability: NodeAvailability) -> Node {
    Node {
        id: id.into(),
        spec: Some(NodeSpec {
            availability: availability.into(),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: state.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(id: &str, mode: Mode, update: Option<UpdateConfig>) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: id.into(),
                ..Default::default()
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "v1".into(),
                    ..Default::default()
                }),
                restart: Some(RestartPolicy {
                    condition: RestartCondition::Any.into(),
                    delay: Some(Duration::from_secs(2).into()),
                    max_attempts: 0,
                    window: None,
                }),
                ..Default::default()
            }),
            mode: Some(mode),
            update,
            ..Default::default()
        }),
        spec_version: 1,
        ..Default::default()
    }
}

struct World {
    store: Store,
    clock: swarm_store::ManualClock,
    now: SystemTime,
}

impl World {
    fn new(nodes: &[Node], services: &[Service]) -> World {
        let clock = swarm_store::ManualClock::new(1_800_000_000);
        let store = Store::with_clock(clock.clone());
        let w = World {
            store,
            now: swarm_store::Clock::now(&clock).to_system_time(),
            clock,
        };
        w.write(|tx| {
            for n in nodes {
                tx.create(n.clone())?;
            }
            for s in services {
                tx.create(s.clone())?;
            }
            Ok(())
        });
        w
    }

    fn write(&self, f: impl FnOnce(&mut swarm_store::Tx) -> Result<(), swarm_store::StoreError>) {
        futures::executor::block_on(self.store.update(f)).unwrap();
    }

    /// One pass; returns the number of changes it made.
    fn pass(&self) -> usize {
        let p = self.store.view_with(|v| plan(v, &Scope::All, self.now));
        assert_eq!(futures::executor::block_on(commit(&self.store, &p)), 0);
        p.changes()
    }

    /// Passes until nothing changes; the next pass must then be a no-op.
    fn settle(&self) {
        for _ in 0..20 {
            if self.pass() == 0 {
                return;
            }
        }
        panic!("the orchestrator does not settle");
    }

    fn view(&self) -> Arc<ReadTx> {
        self.store.view()
    }

    fn wanted(&self, svc: &str) -> Vec<Arc<Task>> {
        let mut v: Vec<Arc<Task>> = by_service(&self.view())
            .remove(svc)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| wanted(t))
            .collect();
        v.sort_by_key(|t| t.slot);
        v
    }

    /// The agents: every task placed on `node` and moved to `state`
    /// (tasks desired to stop are shut down).
    fn report(&self, select: impl Fn(&Task) -> bool, node: &str, state: TaskState) {
        let now = self.now;
        self.write(|tx| {
            for t in tx.all::<Task>() {
                if !select(&t) {
                    continue;
                }
                let mut t = (*t).clone();
                if t.node_id.is_empty() {
                    t.node_id = node.into();
                }
                let s = if t.desired_state() > TaskState::Complete {
                    TaskState::Shutdown
                } else {
                    state
                };
                if s > t.state() {
                    t.status = Some(TaskStatus {
                        state: s.into(),
                        timestamp: Some(now.into()),
                        ..Default::default()
                    });
                    tx.update(t)?;
                }
            }
            Ok(())
        });
    }

    fn run_all(&self, node: &str) {
        self.report(|t| t.state() < TaskState::Running, node, TaskState::Running);
        self.report(
            |t| t.desired_state() > TaskState::Complete,
            node,
            TaskState::Shutdown,
        );
    }

    /// Replaces a node (keeping its stored version).
    fn set_node(&self, n: Node) {
        self.write(|tx| {
            let mut n = n;
            n.meta = tx.get::<Node>(&n.id).unwrap().meta;
            tx.update(n).map(drop)
        });
    }

    fn advance(&mut self, d: Duration) {
        self.clock.advance(i64::try_from(d.as_secs()).unwrap());
        self.now += d;
    }
}

fn replicated(n: u64) -> Mode {
    Mode::Replicated(ReplicatedService { replicas: n })
}

fn ready(id: &str) -> Node {
    node(id, NodeState::Ready, NodeAvailability::Active)
}

#[test]
fn replicated_service_gets_one_task_per_slot_and_then_rests() {
    let w = World::new(&[ready("n1")], &[service("web", replicated(3), None)]);
    assert_eq!(w.pass(), 3);
    let tasks = w.wanted("web");
    assert_eq!(
        tasks.iter().map(|t| t.slot).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(tasks.iter().all(|t| t.desired_state() == TaskState::Running
        && t.state() == TaskState::New
        && t.spec_version == 1));
    assert_eq!(w.pass(), 0, "a second pass must change nothing");
}

#[test]
fn scaling_down_stops_tasks_that_do_not_run_first() {
    let w = World::new(&[ready("n1")], &[service("web", replicated(3), None)]);
    w.settle();
    // Slots 1 and 3 run, slot 2 does not.
    w.report(|t| t.slot != 2, "n1", TaskState::Running);
    w.write(|tx| {
        let mut s = (*tx.get::<Service>("web").unwrap()).clone();
        s.spec.as_mut().unwrap().mode = Some(replicated(2));
        tx.update(s).map(drop)
    });
    w.settle();
    let slots: Vec<u64> = w.wanted("web").iter().map(|t| t.slot).collect();
    assert_eq!(slots, vec![1, 3]);
    // Never placed, so nothing runs: the task was removed and reaped.
    assert!(by_service(&w.view())["web"].iter().all(|t| t.slot != 2));
}

#[test]
fn tasks_of_a_down_node_are_replaced_in_their_slot_at_once() {
    let w = World::new(
        &[ready("n1"), ready("n2")],
        &[service("web", replicated(2), None)],
    );
    w.settle();
    w.report(|t| t.slot == 1, "n1", TaskState::Running);
    w.report(|t| t.slot == 2, "n2", TaskState::Running);
    w.set_node(node("n2", NodeState::Down, NodeAvailability::Active));
    w.settle();
    let tasks = w.wanted("web");
    assert_eq!(tasks.len(), 2);
    let slot2 = tasks.iter().find(|t| t.slot == 2).unwrap();
    assert!(slot2.node_id.is_empty() && slot2.state() == TaskState::New);
    let old = by_service(&w.view())["web"]
        .iter()
        .find(|t| t.node_id == "n2")
        .unwrap()
        .clone();
    assert_eq!(old.desired_state(), TaskState::Shutdown);
}

#[test]
fn draining_a_node_moves_its_tasks() {
    let w = World::new(
        &[ready("n1"), ready("n2")],
        &[service("web", replicated(2), None)],
    );
    w.settle();
    w.report(|_| true, "n2", TaskState::Running);
    w.set_node(node("n2", NodeState::Ready, NodeAvailability::Drain));
    w.settle();
    assert!(w.wanted("web").iter().all(|t| t.node_id.is_empty()));
    assert_eq!(w.wanted("web").len(), 2);
}

#[test]
fn a_failed_task_restarts_after_the_delay_and_history_stays_bounded() {
    let mut w = World::new(&[ready("n1")], &[service("web", replicated(1), None)]);
    w.settle();
    for round in 0..8 {
        w.report(wanted, "n1", TaskState::Failed);
        let p = w.store.view_with(|v| plan(v, &Scope::All, w.now));
        assert_eq!(p.changes(), 0, "round {round}: restarted before the delay");
        assert_eq!(p.wake, Some(w.now + Duration::from_secs(2)));
        w.advance(Duration::from_secs(2));
        w.settle();
        let tasks = w.wanted("web");
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].state(), TaskState::New);
    }
    w.settle();
    // 1 wanted + at most 5 finished tasks in the slot's history.
    let all = by_service(&w.view())["web"].len();
    assert_eq!(all, 6, "history beyond the limit must be reaped");
}

#[test]
fn max_attempts_stop_restarts() {
    let mut svc = service("web", replicated(1), None);
    let restart = &mut svc.spec.as_mut().unwrap().task.as_mut().unwrap().restart;
    restart.as_mut().unwrap().max_attempts = 2;
    restart.as_mut().unwrap().delay = Some(Duration::ZERO.into());
    let w = World::new(&[ready("n1")], &[svc]);
    w.settle();
    for _ in 0..2 {
        w.report(wanted, "n1", TaskState::Failed);
        w.settle();
        assert_eq!(w.wanted("web")[0].state(), TaskState::New);
    }
    w.report(wanted, "n1", TaskState::Failed);
    w.settle();
    let tasks = w.wanted("web");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].state(), TaskState::Failed, "no third restart");
}

fn update_spec(w: &mut World, image: &str) {
    w.advance(Duration::from_secs(1));
    w.write(|tx| {
        let mut s = (*tx.get::<Service>("web").unwrap()).clone();
        s.previous_spec = s.spec.clone();
        s.spec
            .as_mut()
            .unwrap()
            .task
            .as_mut()
            .unwrap()
            .container
            .as_mut()
            .unwrap()
            .image = image.into();
        s.spec_version += 1;
        s.update_status = Some(UpdateStatus {
            state: UpdateState::Updating.into(),
            started_at: Some(w.now.into()),
            ..Default::default()
        });
        tx.update(s).map(drop)
    });
}

fn image(t: &Task) -> String {
    t.spec
        .as_ref()
        .unwrap()
        .container
        .as_ref()
        .unwrap()
        .image
        .clone()
}

fn update_config(parallelism: u64, action: FailureAction) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        delay: Some(Duration::ZERO.into()),
        failure_action: action.into(),
        monitor: Some(Duration::ZERO.into()),
        max_failure_ratio: 0.0,
        order: UpdateOrder::StopFirst.into(),
    }
}

#[test]
fn rolling_update_replaces_in_batches_of_parallelism() {
    let cfg = update_config(2, FailureAction::Pause);
    let mut w = World::new(&[ready("n1")], &[service("web", replicated(5), Some(cfg))]);
    w.settle();
    w.run_all("n1");
    update_spec(&mut w, "v2");
    let mut max_down = 0;
    for _ in 0..10 {
        w.settle();
        let tasks = w.wanted("web");
        let not_running_or_new = 5 - tasks
            .iter()
            .filter(|t| t.state() == TaskState::Running)
            .count();
        max_down = max_down.max(not_running_or_new);
        w.run_all("n1");
    }
    w.settle();
    let tasks = w.wanted("web");
    assert_eq!(tasks.len(), 5);
    assert!(tasks.iter().all(|t| image(t) == "v2"));
    assert!(
        max_down <= 2,
        "at most parallelism slots down at once, saw {max_down}"
    );
    let s = w.view().get::<Service>("web").unwrap();
    assert_eq!(
        s.update_status.as_ref().unwrap().state(),
        UpdateState::Completed
    );
}

#[test]
fn failing_update_with_rollback_action_rolls_back() {
    let cfg = update_config(2, FailureAction::Rollback);
    let mut w = World::new(&[ready("n1")], &[service("web", replicated(4), Some(cfg))]);
    w.settle();
    w.run_all("n1");
    update_spec(&mut w, "broken");
    w.settle();
    w.run_all("n1"); // old tasks stop
    w.settle();
    // The new tasks fail.
    w.report(
        |t| image(t) == "broken" && wanted(t),
        "n1",
        TaskState::Failed,
    );
    for _ in 0..10 {
        w.settle();
        w.run_all("n1");
        // The rollback config is the default: monitor 5 s.
        w.advance(Duration::from_secs(6));
    }
    let s = w.view().get::<Service>("web").unwrap();
    assert_eq!(
        s.update_status.as_ref().unwrap().state(),
        UpdateState::RollbackCompleted
    );
    let tasks = w.wanted("web");
    assert_eq!(tasks.len(), 4);
    assert!(tasks.iter().all(|t| image(t) == "v1"), "rolled back to v1");
}

#[test]
fn global_service_follows_nodes_availability_and_joins() {
    let nodes = [
        ready("n1"),
        node("n2", NodeState::Ready, NodeAvailability::Drain),
        node("n3", NodeState::Ready, NodeAvailability::Pause),
    ];
    let w = World::new(
        &nodes,
        &[service("agent", Mode::Global(GlobalService {}), None)],
    );
    w.settle();
    let on: Vec<String> = w
        .wanted("agent")
        .iter()
        .map(|t| t.node_id.clone())
        .collect();
    assert_eq!(on, vec!["n1".to_string()]);
    w.write(|tx| tx.create(ready("n4")).map(drop));
    w.settle();
    assert_eq!(w.wanted("agent").len(), 2);
    w.set_node(node("n1", NodeState::Ready, NodeAvailability::Drain));
    w.settle();
    let on: Vec<String> = w
        .wanted("agent")
        .iter()
        .map(|t| t.node_id.clone())
        .collect();
    assert_eq!(on, vec!["n4".to_string()]);
}

#[test]
fn replicated_job_runs_to_its_completions_with_bounded_concurrency() {
    let job = Mode::ReplicatedJob(ReplicatedJob {
        max_concurrent: 2,
        total_completions: 5,
    });
    let w = World::new(&[ready("n1")], &[service("batch", job, None)]);
    let mut most = 0;
    for _ in 0..10 {
        w.settle();
        let active = w
            .wanted("batch")
            .iter()
            .filter(|t| t.state() != TaskState::Complete)
            .count();
        most = most.max(active);
        w.report(wanted, "n1", TaskState::Complete);
    }
    let done = by_service(&w.view())["batch"]
        .iter()
        .filter(|t| t.state() == TaskState::Complete)
        .count();
    assert_eq!(done, 5);
    assert!(most <= 2, "at most max_concurrent at once, saw {most}");
    assert!(
        w.wanted("batch")
            .iter()
            .all(|t| t.desired_state() == TaskState::Complete)
    );
}

#[test]
fn tasks_of_a_deleted_service_are_removed() {
    let w = World::new(&[ready("n1")], &[service("web", replicated(2), None)]);
    w.settle();
    w.run_all("n1");
    w.write(|tx| tx.delete::<Service>("web").map(drop));
    w.settle();
    w.run_all("n1");
    w.settle();
    assert!(!by_service(&w.view()).contains_key("web"));
}
