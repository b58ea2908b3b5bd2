//! Health checks of task containers: the spec's check becomes the
//! container's healthcheck (the engine runs it), and the agent watches the
//! container's health while it waits for it; once the engine says
//! unhealthy, the task is killed and reported as the process executor
//! reports it.

use std::time::Duration;

use bollard::models::{ContainerState, HealthConfig as EngineHealth, HealthStatusEnum};
use swarm_api::v1::HealthConfig;

use crate::exec::ExecError;
use crate::exec::process::health::HealthPlan;

/// Shortest time between two looks at a container's health.
const MIN_POLL: Duration = Duration::from_millis(100);
/// Longest time between two looks at a container's health.
const MAX_POLL: Duration = Duration::from_secs(2);

/// The engine's healthcheck for the spec's: `None` leaves the image's own
/// check in force; `["NONE"]` turns it off. Defaults are filled in as the
/// process executor fills them.
pub(super) fn to_engine(config: Option<&HealthConfig>) -> Result<Option<EngineHealth>, ExecError> {
    let Some(c) = config else { return Ok(None) };
    if c.test.is_empty() {
        return Ok(None);
    }
    let Some(plan) = HealthPlan::from_spec(Some(c))? else {
        return Ok(Some(EngineHealth {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }));
    };
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Ok(Some(EngineHealth {
        test: Some(c.test.clone()),
        interval: Some(nanos(plan.interval)),
        timeout: Some(nanos(plan.timeout)),
        retries: Some(i64::from(plan.retries)),
        start_period: Some(nanos(plan.start_period)),
        start_interval: None,
    }))
}

/// How often to look at the health of a container whose checks run every
/// `interval` (the image's own check: unknown).
pub(super) fn poll_interval(interval: Option<Duration>) -> Duration {
    interval.map_or(Duration::from_secs(1), |i| i.clamp(MIN_POLL, MAX_POLL))
}

/// Why the engine finds the container unhealthy, `None` while it does
/// not.
pub(super) fn unhealthy(state: &ContainerState) -> Option<String> {
    let health = state.health.as_ref()?;
    if health.status != Some(HealthStatusEnum::UNHEALTHY) {
        return None;
    }
    let streak = health.failing_streak.unwrap_or(0);
    let last = health
        .log
        .as_ref()
        .and_then(|l| l.last())
        .map(|r| {
            let output = r.output.as_deref().unwrap_or_default().trim();
            let code = r.exit_code.unwrap_or(-1);
            if output.is_empty() {
                format!("check exited with {code}")
            } else {
                format!("check exited with {code}: {output}")
            }
        })
        .unwrap_or_else(|| "no check result".into());
    Some(format!(
        "{streak} consecutive failed health checks, last: {last}"
    ))
}

#[cfg(test)]
mod tests {
    use bollard::models::{Health, HealthcheckResult};

    use super::*;

    #[test]
    fn spec_checks_become_engine_checks() {
        assert_eq!(to_engine(None).unwrap(), None);
        let off = to_engine(Some(&HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        }))
        .unwrap()
        .unwrap();
        assert_eq!(off.test, Some(vec!["NONE".to_string()]));
        let c = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /tmp/ok".into()],
            interval: Some(swarm_api::v1::Duration::from_millis(200)),
            retries: 2,
            ..Default::default()
        };
        let e = to_engine(Some(&c)).unwrap().unwrap();
        assert_eq!(e.test, Some(c.test.clone()));
        assert_eq!(e.interval, Some(200_000_000));
        assert_eq!(e.timeout, Some(30_000_000_000), "the default timeout");
        assert_eq!((e.retries, e.start_period), (Some(2), Some(0)));
        let bad = HealthConfig {
            test: vec!["bogus".into()],
            ..Default::default()
        };
        assert!(matches!(
            to_engine(Some(&bad)),
            Err(ExecError::InvalidSpec(_))
        ));
    }

    #[test]
    fn unhealthy_only_when_the_engine_says_so() {
        let state = |status| ContainerState {
            health: Some(Health {
                status: Some(status),
                failing_streak: Some(3),
                log: Some(vec![HealthcheckResult {
                    exit_code: Some(1),
                    output: Some("no /tmp/ok\n".into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        };
        assert_eq!(unhealthy(&ContainerState::default()), None);
        assert_eq!(unhealthy(&state(HealthStatusEnum::STARTING)), None);
        assert_eq!(unhealthy(&state(HealthStatusEnum::HEALTHY)), None);
        assert_eq!(
            unhealthy(&state(HealthStatusEnum::UNHEALTHY)).as_deref(),
            Some("3 consecutive failed health checks, last: check exited with 1: no /tmp/ok")
        );
        assert_eq!(poll_interval(None), Duration::from_secs(1));
        assert_eq!(
            poll_interval(Some(Duration::from_millis(10))),
            Duration::from_millis(100)
        );
        assert_eq!(
            poll_interval(Some(Duration::from_secs(30))),
            Duration::from_secs(2)
        );
    }
}
