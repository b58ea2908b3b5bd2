//! The no-op driver passes the same conformance suite as the VXLAN driver.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::any::Any;

use swarm_overlay::conformance::{SuiteConfig, TaskNamespaces, run_all};
use swarm_overlay::driver::NetnsRef;
use swarm_overlay::noop::NoopDriver;

/// The no-op driver never opens a namespace: a path is enough.
struct NoNamespaces;

impl TaskNamespaces for NoNamespaces {
    fn create(&self) -> Result<(NetnsRef, Box<dyn Any + Send>), String> {
        Ok((NetnsRef::Path("/nonexistent/netns".into()), Box::new(())))
    }
}

#[tokio::test]
async fn noop_driver_conforms() {
    let d = NoopDriver::new();
    let failures = run_all(&d, &NoNamespaces, &SuiteConfig::default()).await;
    assert!(failures.is_empty(), "{failures:#?}");
}
