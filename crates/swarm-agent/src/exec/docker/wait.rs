//! Following a started container until it stops, and its exit status.

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error;
use bollard::models::ContainerState;
use bollard::query_parameters::WaitContainerOptionsBuilder;
use futures::StreamExt;
use tokio::sync::watch;

use super::engine;
use crate::exec::{ExecError, ExitStatus};

/// Time between attempts when the engine cannot be reached.
const RETRY: Duration = Duration::from_millis(500);

/// The exit status for the engine's exit code: `128 + n` (n from 1 to
/// 64) is a death by signal `n`, as the engine (like a shell) reports it.
pub(super) fn exit_status(code: i64) -> ExitStatus {
    match i32::try_from(code) {
        Ok(c @ 129..=192) => ExitStatus::signaled(c - 128),
        Ok(c) => ExitStatus::code(c),
        Err(_) => ExitStatus::code(-1),
    }
}

/// The container's state; `None` when the engine has no such container.
pub(super) async fn state(docker: &Docker, id: &str) -> Result<Option<ContainerState>, ExecError> {
    match docker.inspect_container(id, None).await {
        Ok(c) => Ok(Some(c.state.unwrap_or_default())),
        Err(e) if engine::is_not_found(&e) => Ok(None),
        Err(e) => Err(engine::err(format!("inspect container {id}"))(e)),
    }
}

/// True while the state says the container's process runs.
pub(super) fn is_running(state: &ContainerState) -> bool {
    state.running == Some(true)
}

/// Waits until container `id` is not running and publishes how it ended
/// on `exit`. Survives the engine going away for a while (it asks again);
/// a container removed behind its back ends with code -1.
pub(super) async fn follow_exit(
    docker: Docker,
    id: String,
    exit: watch::Sender<Option<ExitStatus>>,
) {
    let options = WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    let status = loop {
        let answer = docker
            .wait_container(&id, Some(options.clone()))
            .next()
            .await;
        match answer {
            Some(Ok(r)) => break exit_status(r.status_code),
            Some(Err(Error::DockerContainerWaitError { code, .. })) => break exit_status(code),
            Some(Err(e)) if engine::is_not_found(&e) => break ExitStatus::code(-1),
            Some(Err(e)) => {
                tracing::debug!(container = %id, error = %engine::reason(&e), "waiting for the container failed: asking again");
            }
            None => {}
        }
        tokio::time::sleep(RETRY).await;
        match state(&docker, &id).await {
            Ok(None) => break ExitStatus::code(-1),
            Ok(Some(s)) if !is_running(&s) => break exit_status(s.exit_code.unwrap_or(-1)),
            Ok(Some(_)) | Err(_) => {}
        }
    };
    exit.send_replace(Some(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_deaths_are_told_apart() {
        assert_eq!(exit_status(0), ExitStatus::code(0));
        assert_eq!(exit_status(3), ExitStatus::code(3));
        assert_eq!(exit_status(128), ExitStatus::code(128));
        assert_eq!(exit_status(137), ExitStatus::signaled(9));
        assert_eq!(exit_status(143), ExitStatus::signaled(15));
        assert_eq!(exit_status(255), ExitStatus::code(255));
        assert_eq!(exit_status(i64::MAX), ExitStatus::code(-1));
    }
}
