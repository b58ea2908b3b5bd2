//! One manager with real raft (its write-ahead log fsyncs every batch) in
//! a temporary directory, running on its own tokio runtime so that its CPU
//! time can be measured apart from the load generator's; and the control
//! API calls the scenarios make.

use std::path::PathBuf;
use std::time::Duration;

use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::*;
use swarm_manager::dispatcher::DispatcherConfig;
use swarm_manager::{Manager, ManagerBuilder};
use swarm_store::By;
use tokio::runtime::{Handle, Runtime};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::cpu::MANAGER_THREAD;

/// The manager's runtime: one worker per core (`SWARM_BENCH_MANAGER_THREADS`
/// to change).
pub fn manager_runtime() -> Runtime {
    let workers = std::env::var("SWARM_BENCH_MANAGER_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(crate::cpu::cores)
        .max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(MANAGER_THREAD)
        // Blocking threads that exit take their CPU time with them: keep
        // them for the whole run.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("the manager runtime")
}

/// The manager under test.
pub struct Cluster {
    /// The manager.
    pub manager: Manager,
    /// Its control API (local socket).
    pub control: ControlClient<Channel>,
    dir: PathBuf,
}

impl Cluster {
    /// Starts a one-manager cluster on `rt`, in a fresh temporary
    /// directory, drained (it runs no tasks itself) and with the default
    /// dispatcher timings (5 s heartbeats).
    pub async fn start(rt: &Handle, dispatcher: DispatcherConfig) -> Cluster {
        let dir = std::env::temp_dir().join(format!("swarm-bench-manager-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = dir.join("state");
        let socket = dir.join("control.sock");
        let manager = rt
            .spawn(
                ManagerBuilder::new(&state)
                    .listen_addr("127.0.0.1:0".parse().expect("an address"))
                    .control_socket(&socket)
                    .availability(NodeAvailability::Drain)
                    .dispatcher_config(dispatcher)
                    .start(),
            )
            .await
            .expect("the manager start task")
            .expect("the manager starts");
        let channel = swarm_manager::local::local_channel(&socket)
            .await
            .expect("the control socket");
        Cluster {
            manager,
            control: ControlClient::new(channel),
            dir,
        }
    }

    /// The worker join token.
    pub fn worker_token(&self) -> swarm_pki::JoinToken {
        self.manager.join_tokens().expect("join tokens").worker
    }

    /// Creates a replicated service of `replicas` tasks; returns its id.
    pub async fn create_service(&mut self, name: &str, replicas: u64) -> String {
        let spec = ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "bench".into(),
                    command: vec!["sleep".into(), "3600".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(service_spec::Mode::Replicated(ReplicatedService {
                replicas,
            })),
            ..Default::default()
        };
        self.control
            .create_service(CreateServiceRequest { spec: Some(spec) })
            .await
            .expect("create service")
            .into_inner()
            .service
            .expect("the created service")
            .id
    }

    /// Removes a service and waits (up to `limit`) until its tasks are
    /// shut down or gone. Returns whether they were.
    pub async fn remove_service(&mut self, id: &str, limit: Duration) -> bool {
        self.control
            .remove_service(RemoveServiceRequest {
                service_id: id.into(),
            })
            .await
            .expect("remove service");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let live = self
                .manager
                .store()
                .view()
                .find::<Task>(By::ServiceId(id))
                .unwrap_or_default()
                .iter()
                .filter(|t| !t.state().is_terminal())
                .count();
            if live == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Tasks of a service that are RUNNING.
    pub fn running(&self, service: &str) -> usize {
        self.manager
            .store()
            .view()
            .find::<Task>(By::ServiceId(service))
            .unwrap_or_default()
            .iter()
            .filter(|t| t.state() == TaskState::Running)
            .count()
    }

    /// How many tasks of a service are in each state, for diagnostics.
    pub fn task_states(&self, service: &str) -> String {
        let mut counts = std::collections::BTreeMap::new();
        for t in self
            .manager
            .store()
            .view()
            .find::<Task>(By::ServiceId(service))
            .unwrap_or_default()
        {
            *counts.entry(t.state()).or_insert(0usize) += 1;
        }
        counts
            .iter()
            .map(|(s, n)| format!("{} {n}", s.as_str_name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Nodes among `ids` that are DOWN.
    pub fn down(&self, ids: &[String]) -> usize {
        let view = self.manager.store().view();
        ids.iter()
            .filter(|id| {
                view.get::<Node>(id)
                    .and_then(|n| n.status.as_ref().map(|s| s.state()))
                    == Some(NodeState::Down)
            })
            .count()
    }

    /// Heartbeats the dispatcher has accepted so far.
    pub fn heartbeats(&self) -> u64 {
        self.manager
            .dispatcher()
            .counters()
            .heartbeats
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the manager (on its runtime) and removes its directory.
    pub async fn stop(self, rt: &Handle) {
        let _ = rt.spawn(self.manager.shutdown()).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
