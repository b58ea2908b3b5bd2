//! The task's image: used when the engine has it, pulled only when it is
//! missing.
//!
//! Asking the engine to pull an image it already has is not free: the
//! engine asks the registry for a newer manifest first, and on a host
//! without a registry (or without DNS) that waits on timeouts before it
//! fails. So the image is inspected first and pulled only when the
//! engine does not know it.

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

use super::engine;
use crate::exec::ExecError;

/// `name` with `:latest` when it has neither a tag nor a digest (the
/// engine pulls every tag of a repository asked for without one).
pub fn normalize_reference(name: &str) -> String {
    if name.contains('@') {
        return name.to_string();
    }
    // A colon after the last slash is a tag; one before it is a port of
    // the registry host.
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Makes sure the engine has `image`, pulling it only when it is missing.
pub(super) async fn ensure(
    docker: &Docker,
    image: &str,
    timeout: Duration,
) -> Result<(), ExecError> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if engine::is_not_found(&e) => {}
        Err(e) => return Err(engine::err(format!("inspect image {image:?}"))(e)),
    }
    let reference = normalize_reference(image);
    tracing::info!(image = %reference, "image not on this node: pulling it");
    let failed = |reason: String| ExecError::ImagePull {
        image: image.to_string(),
        reason,
    };
    let pull = async {
        let options = CreateImageOptionsBuilder::new()
            .from_image(&reference)
            .build();
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            let info = item.map_err(|e| failed(engine::reason(&e)))?;
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(failed(message));
            }
        }
        Ok(())
    };
    tokio::time::timeout(timeout, pull)
        .await
        .map_err(|_| failed(format!("timed out after {timeout:?}")))??;
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(e) => Err(failed(format!(
            "the pull ended but the engine still has no such image: {}",
            engine::reason(&e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_get_a_tag_when_they_have_none() {
        let table = [
            ("busybox", "busybox:latest"),
            ("busybox:1.36", "busybox:1.36"),
            ("swarm-test/busybox", "swarm-test/busybox:latest"),
            ("reg.local:5000/app", "reg.local:5000/app:latest"),
            ("reg.local:5000/app:v2", "reg.local:5000/app:v2"),
            ("app@sha256:abcd", "app@sha256:abcd"),
        ];
        for (name, want) in table {
            assert_eq!(normalize_reference(name), want, "{name}");
        }
    }
}
