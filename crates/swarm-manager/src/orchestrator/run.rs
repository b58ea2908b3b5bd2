//! The orchestrator's loop (leader only): store events mark services for
//! a pass, debounced (50 ms after a change, at most 1 s after the first);
//! timers wake it when a restart delay, an update delay or a monitor
//! period ends.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use swarm_store::{AnyObject, Event, Kind, Store, WatchError, WatchFilter};
use tokio::time::Instant;

use super::pass::{Scope, commit, plan};

/// Debounce after a change.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest wait after the first change of a burst.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// Retry after a conflicting write.
const RETRY: Duration = Duration::from_millis(100);

fn note(scope: &mut Option<Scope>, e: &Event) {
    let Some(o) = e.object() else {
        return;
    };
    match o {
        AnyObject::Service(s) => scope
            .get_or_insert_with(|| Scope::Services(HashSet::new()))
            .add(&s.id),
        AnyObject::Task(t) => scope
            .get_or_insert_with(|| Scope::Services(HashSet::new()))
            .add(&t.service_id),
        AnyObject::Node(_) | AnyObject::Cluster(_) => *scope = Some(Scope::All),
        _ => {}
    }
}

fn instant_of(at: SystemTime) -> Instant {
    Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// Runs the orchestrators until the store closes or the task is aborted.
pub async fn run(store: Store) {
    let filter = WatchFilter::all()
        .kinds([Kind::Service, Kind::Task, Kind::Node, Kind::Cluster])
        .commits(false)
        .capacity(200_000);
    let (_, mut watcher) = store.view_and_watch(filter.clone(), |_| ());
    let mut scope: Option<Scope> = Some(Scope::All);
    let mut first = Some(Instant::now());
    let mut last = Instant::now();
    // A timer: the whole cluster is looked at again when it fires.
    let mut timer: Option<Instant> = None;
    loop {
        let debounce = first.map(|f| (last + DEBOUNCE).min(f + MAX_DELAY));
        let wake = match (debounce, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let event = match wake {
            Some(at) => tokio::select! {
                e = watcher.recv() => Some(e),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(watcher.recv().await),
        };
        match event {
            Some(Ok(e)) => {
                note(&mut scope, &e);
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
            }
            Some(Err(WatchError::Lagged)) => {
                let (_, w) = store.view_and_watch(filter.clone(), |_| ());
                watcher = w;
                scope = Some(Scope::All);
                first = Some(Instant::now());
            }
            Some(Err(_)) => return,
            None => {
                if timer.is_some_and(|t| t <= Instant::now()) {
                    timer = None;
                    scope = Some(Scope::All);
                }
                first = None;
                let Some(s) = scope.take() else {
                    continue;
                };
                let decided = store.view_with(|v| plan(v, &s, SystemTime::now()));
                if let Some(at) = decided.wake {
                    let at = instant_of(at);
                    timer = Some(timer.map_or(at, |t| t.min(at)));
                }
                if decided.changes() > 0 {
                    tracing::debug!(changes = decided.changes(), "orchestrator pass");
                    if commit(&store, &decided).await > 0 {
                        scope = Some(Scope::All);
                        let at = Instant::now() + RETRY;
                        timer = Some(timer.map_or(at, |t| t.min(at)));
                    }
                }
            }
        }
    }
}
