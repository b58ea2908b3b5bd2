//! The restart supervisor's decision for a task that ended by itself:
//! restart now, restart later (the policy's delay), or never (condition,
//! or max attempts within the window used up).
//!
//! The restart history travels with the tasks, in a label of each
//! replacement, so it survives a leader change (SwarmKit keeps it in the
//! leader's memory and loses it).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use swarm_api::v1::{RestartCondition, Task, TaskState};

use super::slots::status_time;

/// Label holding the restart times (unix milliseconds, comma-separated)
/// that count against the policy's max attempts.
pub const RESTART_HISTORY_LABEL: &str = "com.swarm.restart-history";

/// What to do with an ended task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Replace it now; the replacement carries these labels.
    Now(BTreeMap<String, String>),
    /// Replace it once this time has come.
    At(SystemTime),
    /// Leave the slot as it is.
    Never,
}

fn millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// The restart times recorded on a task.
pub(crate) fn history(t: &Task) -> Vec<u64> {
    t.annotations
        .as_ref()
        .and_then(|a| a.labels.get(RESTART_HISTORY_LABEL))
        .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_default()
}

/// Decides for `task`, which ended (state after RUNNING) while wanted.
/// Jobs never restart a task that completed.
pub(crate) fn decide(task: &Task, is_job: bool, now: SystemTime) -> Decision {
    let spec = task.spec.clone().unwrap_or_default();
    let policy = swarm_api::defaults::restart_policy(&spec);
    let completed = task.state() == TaskState::Complete;
    let restart = match policy.condition() {
        RestartCondition::None => false,
        RestartCondition::OnFailure => !completed,
        RestartCondition::Any => !(completed && is_job),
    };
    if !restart {
        return Decision::Never;
    }
    let window = policy
        .window
        .and_then(|w| w.to_std().ok())
        .unwrap_or_default();
    let now_ms = millis(now);
    let mut past: Vec<u64> = history(task)
        .into_iter()
        .filter(|t| window.is_zero() || now_ms.saturating_sub(*t) <= millis_of(window))
        .collect();
    if policy.max_attempts > 0 && past.len() as u64 >= policy.max_attempts {
        return Decision::Never;
    }
    let delay = policy
        .delay
        .and_then(|d| d.to_std().ok())
        .unwrap_or_default();
    let due = status_time(task) + delay;
    if now < due {
        return Decision::At(due);
    }
    // Only what the policy counts is kept: the attempts within the window
    // (bounded by max attempts, so the label stays small).
    past.push(now_ms);
    if policy.max_attempts > 0 {
        let keep = usize::try_from(policy.max_attempts).unwrap_or(usize::MAX);
        let drop = past.len().saturating_sub(keep);
        past.drain(..drop);
    } else {
        past.clear();
    }
    let mut labels = BTreeMap::new();
    if !past.is_empty() {
        let text: Vec<String> = past.iter().map(u64::to_string).collect();
        labels.insert(RESTART_HISTORY_LABEL.to_string(), text.join(","));
    }
    Decision::Now(labels)
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use swarm_api::v1::{Annotations, RestartPolicy, TaskSpec, TaskStatus};

    fn ended(state: TaskState, policy: Option<RestartPolicy>, at: SystemTime) -> Task {
        Task {
            spec: Some(TaskSpec {
                restart: policy,
                ..Default::default()
            }),
            status: Some(TaskStatus {
                state: state.into(),
                timestamp: Some(at.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn policy(
        c: RestartCondition,
        delay_ms: i64,
        max: u64,
        window_s: i64,
    ) -> Option<RestartPolicy> {
        Some(RestartPolicy {
            condition: c.into(),
            delay: Some(swarm_api::v1::Duration::from_millis(delay_ms)),
            max_attempts: max,
            window: Some(swarm_api::v1::Duration::from_secs(window_s)),
        })
    }

    #[test]
    fn conditions_decide_which_endings_restart() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1000);
        let now = t0 + Duration::from_secs(60);
        let none = policy(RestartCondition::None, 0, 0, 0);
        let on_failure = policy(RestartCondition::OnFailure, 0, 0, 0);
        let any = policy(RestartCondition::Any, 0, 0, 0);
        assert_eq!(
            decide(&ended(TaskState::Failed, none, t0), false, now),
            Decision::Never
        );
        assert_eq!(
            decide(&ended(TaskState::Complete, on_failure, t0), false, now),
            Decision::Never
        );
        assert!(matches!(
            decide(&ended(TaskState::Failed, on_failure, t0), false, now),
            Decision::Now(_)
        ));
        assert!(matches!(
            decide(&ended(TaskState::Complete, any, t0), false, now),
            Decision::Now(_)
        ));
        assert_eq!(
            decide(&ended(TaskState::Complete, any, t0), true, now),
            Decision::Never
        );
    }

    #[test]
    fn the_delay_counts_from_the_end_and_defaults_to_five_seconds() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1000);
        let t = ended(TaskState::Failed, None, t0);
        assert_eq!(
            decide(&t, false, t0 + Duration::from_secs(1)),
            Decision::At(t0 + Duration::from_secs(5))
        );
        assert!(matches!(
            decide(&t, false, t0 + Duration::from_secs(5)),
            Decision::Now(_)
        ));
    }

    #[test]
    fn max_attempts_count_within_the_window_only() {
        let t0 = UNIX_EPOCH + Duration::from_secs(10_000);
        let p = policy(RestartCondition::Any, 0, 2, 60);
        let mut t = ended(TaskState::Failed, p, t0);
        // First restart: history records it.
        let Decision::Now(labels) = decide(&t, false, t0) else {
            panic!("expected a restart")
        };
        t.annotations = Some(Annotations {
            name: String::new(),
            labels,
        });
        assert_eq!(history(&t).len(), 1);
        let Decision::Now(labels) = decide(&t, false, t0) else {
            panic!("expected a second restart")
        };
        t.annotations.as_mut().unwrap().labels = labels;
        assert_eq!(history(&t).len(), 2);
        // A third within the window is refused...
        assert_eq!(
            decide(&t, false, t0 + Duration::from_secs(30)),
            Decision::Never
        );
        // ...and allowed once the earlier attempts left the window.
        assert!(matches!(
            decide(&t, false, t0 + Duration::from_secs(61)),
            Decision::Now(_)
        ));
    }
}
