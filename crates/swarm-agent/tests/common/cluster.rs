//! Helpers of the tests that run a manager with real agents on overlay
//! networks: the manager, waiting with the tasks listed on time-out, and
//! the namespace names a run leaves.

use std::path::Path;
use std::time::Duration;

use swarm_api::v1::Task;
use swarm_manager::dispatcher::DispatcherConfig;
use swarm_manager::{Manager, ManagerBuilder};

/// A manager in `dir/manager` on loopback with fast raft and dispatcher
/// timings (300 ms heartbeats, 20 ms flushes).
pub async fn fast_manager(dir: &Path) -> Manager {
    ManagerBuilder::new(dir.join("manager"))
        .listen_addr("127.0.0.1:0".parse().unwrap())
        .control_socket(dir.join("manager").join("control.sock"))
        .raft_config(swarm_raft::RaftConfig::fast())
        .dispatcher_config(DispatcherConfig {
            heartbeat_period: Duration::from_millis(300),
            heartbeat_jitter: Duration::from_millis(30),
            status_flush_interval: Duration::from_millis(20),
            network_flush_interval: Duration::from_millis(20),
            ..DispatcherConfig::default()
        })
        .start()
        .await
        .unwrap()
}

/// Polls `f` every 50 ms for up to `limit`; on time-out, fails listing
/// every task of `m` (where it is, its state and message).
pub async fn eventually_tasks<T, F, Fut>(what: &str, m: &Manager, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            let tasks: Vec<String> = m
                .store()
                .view()
                .all::<Task>()
                .iter()
                .map(|t| {
                    let st = t.status.clone().unwrap_or_default();
                    format!(
                        "{} {} on {:?}: {:?} {:?} {:?}",
                        t.display_name(),
                        t.id,
                        t.node_id,
                        t.state(),
                        st.message,
                        st.err
                    )
                })
                .collect();
            panic!("timed out waiting for {what}; tasks: {tasks:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Named network namespaces starting with `prefix` (tasks' and networks').
pub fn netns_leftovers(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Removes, when dropped, the namespace names starting with its prefix
/// that a failed run left.
pub struct NetnsSweeper(pub String);

impl Drop for NetnsSweeper {
    fn drop(&mut self) {
        for n in netns_leftovers(&self.0) {
            let _ = swarm_overlay::netns::remove_named(Path::new("/run/netns").join(n));
        }
    }
}
