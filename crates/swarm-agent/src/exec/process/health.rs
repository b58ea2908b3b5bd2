//! Health checks of process tasks: a command run at an interval while
//! the task runs; too many consecutive failures (after the start period)
//! make the task unhealthy, and it is stopped and reported FAILED.
//!
//! Checks run while [`Controller::wait`](crate::Controller::wait) is
//! pending, which the task manager always is for a running task.

use std::time::Duration;

use swarm_api::v1::HealthConfig;
use tokio::time::Instant;

use crate::exec::ExecError;

/// Default time between checks (as Docker).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Default time a check may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default consecutive failures that make a task unhealthy.
pub const DEFAULT_RETRIES: u32 = 3;

/// A validated health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthPlan {
    pub(crate) argv: Vec<String>,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) start_period: Duration,
}

fn duration(d: Option<&swarm_api::v1::Duration>, default: Duration) -> Result<Duration, ExecError> {
    match d {
        None => Ok(default),
        Some(d) => {
            let d = d
                .to_std()
                .map_err(|e| ExecError::InvalidSpec(format!("health check: {e}")))?;
            Ok(if d.is_zero() { default } else { d })
        }
    }
}

impl HealthPlan {
    /// The plan for `config`, `None` when there is no check (absent,
    /// empty or `["NONE"]`).
    pub(crate) fn from_spec(
        config: Option<&HealthConfig>,
    ) -> Result<Option<HealthPlan>, ExecError> {
        let Some(c) = config else { return Ok(None) };
        let argv = match c.test.split_first() {
            None => return Ok(None),
            Some((kind, _)) if kind == "NONE" => return Ok(None),
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            Some(_) => {
                return Err(ExecError::InvalidSpec(format!(
                    "health check test {:?} must be [\"NONE\"], [\"CMD\", ...] or [\"CMD-SHELL\", command]",
                    c.test
                )));
            }
        };
        Ok(Some(HealthPlan {
            argv,
            interval: duration(c.interval.as_ref(), DEFAULT_INTERVAL)?,
            timeout: duration(c.timeout.as_ref(), DEFAULT_TIMEOUT)?,
            retries: u32::try_from(c.retries)
                .ok()
                .filter(|r| *r > 0)
                .unwrap_or(DEFAULT_RETRIES),
            start_period: duration(c.start_period.as_ref(), Duration::ZERO)?,
        }))
    }
}

/// Progress of the checks of one task (kept across `wait` calls).
#[derive(Debug, Clone)]
pub(crate) struct HealthState {
    pub(crate) started: Instant,
    pub(crate) next_check: Instant,
    pub(crate) failures: u32,
    pub(crate) unhealthy: Option<String>,
}

impl HealthState {
    pub(crate) fn new(now: Instant, plan: &HealthPlan) -> Self {
        HealthState {
            started: now,
            next_check: now + plan.interval,
            failures: 0,
            unhealthy: None,
        }
    }

    /// Records a check's outcome at `now`; returns the reason once the
    /// task is unhealthy.
    pub(crate) fn record(
        &mut self,
        plan: &HealthPlan,
        now: Instant,
        failure: Option<String>,
    ) -> Option<String> {
        self.next_check = now + plan.interval;
        match failure {
            None => self.failures = 0,
            Some(_) if now < self.started + plan.start_period => {}
            Some(why) => {
                self.failures += 1;
                if self.failures >= plan.retries {
                    let reason = format!(
                        "{} consecutive failed health checks, last: {why}",
                        self.failures
                    );
                    self.unhealthy = Some(reason.clone());
                    return Some(reason);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(test: &[&str]) -> HealthConfig {
        HealthConfig {
            test: test.iter().map(|s| s.to_string()).collect(),
            retries: 2,
            start_period: Some(swarm_api::v1::Duration::from_secs(1)),
            ..Default::default()
        }
    }

    #[test]
    fn plans_from_specs() {
        assert_eq!(HealthPlan::from_spec(None).unwrap(), None);
        assert_eq!(
            HealthPlan::from_spec(Some(&config(&["NONE"]))).unwrap(),
            None
        );
        let p = HealthPlan::from_spec(Some(&config(&["CMD-SHELL", "test", "-f x"])))
            .unwrap()
            .unwrap();
        assert_eq!(p.argv, ["/bin/sh", "-c", "test -f x"]);
        assert_eq!((p.interval, p.retries), (DEFAULT_INTERVAL, 2));
        let p = HealthPlan::from_spec(Some(&config(&["CMD", "true"])))
            .unwrap()
            .unwrap();
        assert_eq!(p.argv, ["true"]);
        assert!(HealthPlan::from_spec(Some(&config(&["CMD"]))).is_err());
        assert!(HealthPlan::from_spec(Some(&config(&["bogus"]))).is_err());
    }

    #[test]
    fn failures_count_after_the_start_period_and_reset_on_success() {
        let plan = HealthPlan::from_spec(Some(&config(&["CMD", "x"])))
            .unwrap()
            .unwrap();
        let t0 = Instant::now();
        let mut s = HealthState::new(t0, &plan);
        let fail = || Some("exit 1".to_string());
        assert_eq!(s.record(&plan, t0, fail()), None, "in the start period");
        assert_eq!(s.record(&plan, t0, fail()), None);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(s.record(&plan, later, fail()), None);
        assert_eq!(s.record(&plan, later, None), None, "success resets");
        assert_eq!(s.record(&plan, later, fail()), None);
        let why = s.record(&plan, later, fail()).unwrap();
        assert!(why.contains("2 consecutive"), "{why}");
        assert!(s.unhealthy.is_some());
    }
}
