//! Checks of a task that every executor makes the same way.

use swarm_api::v1::ContainerSpec;

use super::ExecError;

/// Task ids name directories, containers and namespaces: alphanumeric
/// only, never empty.
pub(crate) fn task_id(id: &str) -> Result<(), ExecError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ExecError::InvalidSpec(format!(
            "task id {id:?} is not alphanumeric"
        )));
    }
    Ok(())
}

/// Every `env` entry is `KEY=value` with a non-empty key.
pub(crate) fn env(spec: &ContainerSpec) -> Result<(), ExecError> {
    match spec
        .env
        .iter()
        .find(|e| !e.contains('=') || e.starts_with('='))
    {
        Some(e) => Err(ExecError::InvalidSpec(format!(
            "environment entry {e:?} is not KEY=value"
        ))),
        None => Ok(()),
    }
}

/// A container's working directory, when set, is absolute.
pub(crate) fn container_dir(spec: &ContainerSpec) -> Result<(), ExecError> {
    if !spec.dir.is_empty() && !spec.dir.starts_with('/') {
        return Err(ExecError::InvalidSpec(format!(
            "working directory {:?} is not an absolute path",
            spec.dir
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_env_and_dirs() {
        assert!(task_id("abc123").is_ok());
        assert!(task_id("").is_err());
        assert!(task_id("../x").is_err());
        let spec = |env: &[&str], dir: &str| ContainerSpec {
            env: env.iter().map(|e| e.to_string()).collect(),
            dir: dir.into(),
            ..Default::default()
        };
        assert!(env(&spec(&["A=1", "B="], "")).is_ok());
        assert!(env(&spec(&["NOEQUALS"], "")).is_err());
        assert!(env(&spec(&["=x"], "")).is_err());
        assert!(container_dir(&spec(&[], "/srv")).is_ok());
        assert!(container_dir(&spec(&[], "")).is_ok());
        assert!(container_dir(&spec(&[], "srv")).is_err());
    }
}
