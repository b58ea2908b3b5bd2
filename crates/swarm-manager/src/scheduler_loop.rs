//! The scheduler loop (leader only): feeds swarm-scheduler from store
//! events and commits its decisions in batches, debounced like SwarmKit's
//! (50 ms after a change, at most 1 s after the first).

use std::time::{Duration, SystemTime};

use swarm_api::v1::{Node, Task, TaskState};
use swarm_scheduler::{Assignment, Scheduler};
use swarm_store::{AnyObject, Event, Kind, Store, StoreError, WatchError, WatchFilter};
use tokio::time::Instant;

/// Debounce after a change.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest wait after the first change of a burst.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// Makes the scheduler a new leader starts with.
pub type SchedulerFactory = std::sync::Arc<dyn Fn() -> Box<dyn Scheduler + Send> + Send + Sync>;

fn feed(s: &mut (dyn Scheduler + Send), e: &Event, now: SystemTime) -> bool {
    match e {
        Event::Created(o) | Event::Updated { new: o, .. } => match o {
            AnyObject::Node(n) => s.upsert_node(n),
            AnyObject::Task(t) => s.upsert_task(t, now),
            _ => return false,
        },
        Event::Deleted(o) => match o {
            AnyObject::Node(n) => s.remove_node(&n.id),
            AnyObject::Task(t) => s.remove_task(&t.id),
            _ => return false,
        },
        Event::Commit { .. } => return false,
    }
    true
}

fn load(s: &mut (dyn Scheduler + Send), view: &swarm_store::ReadTx, now: SystemTime) {
    for n in view.all::<Node>() {
        s.upsert_node(&n);
    }
    for t in view.all::<Task>() {
        if !t.state().is_terminal() {
            s.upsert_task(&t, now);
        }
    }
}

/// Runs the loop until the store closes or the task is aborted.
pub async fn run(
    store: Store,
    make: SchedulerFactory,
    counters: std::sync::Arc<crate::metrics::Counters>,
) {
    let filter = WatchFilter::all()
        .kinds([Kind::Node, Kind::Task])
        .commits(false)
        .capacity(200_000);
    let mut scheduler = make();
    let (_, mut watcher) = store.view_and_watch(filter.clone(), |v| {
        load(scheduler.as_mut(), v, SystemTime::now())
    });
    let mut first_change: Option<Instant> = Some(Instant::now());
    let mut last_change = Instant::now();
    loop {
        let wake = first_change.map(|f| (last_change + DEBOUNCE).min(f + MAX_DELAY));
        let event = match wake {
            Some(at) => tokio::select! {
                e = watcher.recv() => Some(e),
                _ = tokio::time::sleep_until(at) => None,
            },
            None => Some(watcher.recv().await),
        };
        match event {
            Some(Ok(e)) => {
                if feed(scheduler.as_mut(), &e, SystemTime::now()) {
                    first_change.get_or_insert_with(Instant::now);
                    last_change = Instant::now();
                }
            }
            Some(Err(WatchError::Lagged)) => {
                scheduler = make();
                let (_, w) = store.view_and_watch(filter.clone(), |v| {
                    load(scheduler.as_mut(), v, SystemTime::now())
                });
                watcher = w;
                first_change = Some(Instant::now());
            }
            Some(Err(_)) => return,
            None => {
                first_change = None;
                let started = std::time::Instant::now();
                let assigned = pass(&store, scheduler.as_mut()).await;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                counters
                    .scheduler_passes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                counters
                    .scheduler_micros
                    .fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
                counters
                    .tasks_assigned
                    .fetch_add(assigned, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// One pass: decide, commit, give back what did not commit. Returns the
/// number of tasks assigned.
async fn pass(store: &Store, scheduler: &mut (dyn Scheduler + Send)) -> u64 {
    let now = SystemTime::now();
    let decided = scheduler.schedule(now);
    if decided.is_empty() {
        return 0;
    }
    let mut rejected: Vec<Assignment> = Vec::new();
    let result = store
        .batch(|b| {
            for a in &decided.assignments {
                let ok = b.update(|tx| {
                    let Some(task) = tx.get::<Task>(&a.task_id) else {
                        return Ok(false);
                    };
                    let still_pending = task.state() == TaskState::Pending
                        && (task.node_id.is_empty() || task.node_id == a.node_id)
                        && task.desired_state() <= TaskState::Complete;
                    if !still_pending {
                        return Ok(false);
                    }
                    let mut t = (*task).clone();
                    a.apply_to(&mut t, now);
                    tx.update(t).map(|_| true)
                });
                if !matches!(ok, Ok(true)) {
                    rejected.push(a.clone());
                }
            }
            for u in &decided.unplaced {
                let _ = b.update(|tx| {
                    let Some(task) = tx.get::<Task>(&u.task_id) else {
                        return Ok(());
                    };
                    let mut t = (*task).clone();
                    if u.apply_to(&mut t, now) {
                        tx.update(t)?;
                    }
                    Ok(())
                });
            }
            Ok::<_, StoreError>(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "committing scheduling decisions failed");
        rejected = decided.assignments.clone();
    }
    for a in &rejected {
        scheduler.undo(a);
    }
    (decided.assignments.len() - rejected.len()) as u64
}
