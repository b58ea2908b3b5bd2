//! The controller of one runc container.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use swarm_api::v1::{ContainerSpec, ContainerStatus, Task};
use tokio::task::JoinHandle;

use super::bundle::Bundle;
use super::runc::{self, Runc};
use super::spec::{self, Extras};
use super::{Shared, user};
use crate::exec::lifecycle::{self, ExitCell, Phase};
use crate::exec::process::health::{HealthPlan, HealthState};
use crate::exec::{
    Controller, Dependencies, ExecError, ExitStatus, LogBuffer, Recovered, parse_signal,
};

/// How often a container that is not the agent's child is polled.
const POLL: Duration = Duration::from_millis(250);

/// Drives one task as a runc container. See the [module docs](super).
#[derive(Debug)]
pub struct OciController {
    shared: Arc<Shared>,
    task: Task,
    spec: ContainerSpec,
    deps: Dependencies,
    id: String,
    bundle: Bundle,
    logs: LogBuffer,
    phase: tokio::sync::Mutex<Phase>,
    exit: Arc<ExitCell>,
    /// The `runc run` process.
    runc_pid: AtomicI32,
    /// The container's init process, once runc reported it.
    pid: Arc<AtomicI32>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    health: Option<HealthPlan>,
    health_state: parking_lot::Mutex<Option<HealthState>>,
}

impl OciController {
    pub(super) fn new(shared: Arc<Shared>, task: &Task, deps: &Dependencies) -> Self {
        let (spec, mine) = deps.for_task(task);
        OciController {
            id: super::container_id(&task.id),
            bundle: Bundle::new(shared.root.join(&task.id)),
            logs: LogBuffer::new(shared.log_bytes),
            // Invalid checks are refused by `prepare`.
            health: HealthPlan::from_spec(spec.healthcheck.as_ref())
                .ok()
                .flatten(),
            shared,
            task: task.clone(),
            spec,
            deps: mine,
            phase: tokio::sync::Mutex::new(Phase::New),
            exit: Arc::new(ExitCell::default()),
            runc_pid: AtomicI32::new(0),
            pid: Arc::new(AtomicI32::new(0)),
            tasks: parking_lot::Mutex::new(Vec::new()),
            health_state: parking_lot::Mutex::new(None),
        }
    }

    /// The runc container id (`swarm-<task id>`).
    pub fn container_id(&self) -> &str {
        &self.id
    }

    fn runc(&self) -> &Runc {
        &self.shared.runc
    }

    fn on_networks(&self) -> bool {
        self.shared.network.is_some() && !self.task.networks.is_empty()
    }

    async fn make_ready(&self) -> Result<(), ExecError> {
        spec::validate(&self.spec)?;
        let image = self.shared.images.resolve(&self.spec.image).await?;
        let user = user::resolve(&image, &self.spec.user, &self.spec.groups)?;
        // A container of an earlier attempt goes first.
        self.runc().delete(&self.id).await?;
        self.bundle.mount_rootfs(&image)?;
        let netns = match &self.shared.network {
            Some(attacher) if self.on_networks() => attacher
                .attach(&self.task)
                .await
                .map_err(|e| ExecError::Network(e.to_string()))?,
            _ => None,
        };
        let address = self
            .task
            .networks
            .first()
            .and_then(|n| n.addresses.first())
            .map(|a| a.split('/').next().unwrap_or(a));
        let hostname = spec::hostname(&self.task, &self.spec);
        let files = self.bundle.write_files(
            &self.spec,
            &self.deps,
            &hostname,
            netns.is_some().then_some(address),
        )?;
        let config = spec::build(
            &self.task,
            &self.spec,
            &Extras {
                rootfs: self.bundle.rootfs(),
                user,
                netns,
                cgroups_path: format!("/{}/{}", self.shared.cgroup_parent, self.id),
                pids_limit: self.shared.pids_limit,
                files,
                init: self.shared.init.clone(),
            },
        )?;
        self.bundle.write_config(&config)
    }

    /// Sends `signal` to the container; to the `runc run` process (which
    /// passes it on) when runc has no running container yet.
    async fn signal(&self, signal: Signal) -> Result<(), ExecError> {
        if self.runc().kill(&self.id, signal).await? {
            return Ok(());
        }
        let pid = self.runc_pid.load(Ordering::SeqCst);
        if pid > 0 && self.exit.get().is_none() {
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(ExecError::sys(format!("signal {signal} to runc {pid}"))(e)),
            }
        }
        Ok(())
    }

    async fn stop_started(&self, grace: Duration, signal: Signal) -> Result<(), ExecError> {
        lifecycle::stop_with_grace(
            &self.exit,
            grace,
            signal,
            |s| self.signal(s),
            "the task's container survived SIGKILL",
        )
        .await
    }

    /// Records the container's pid once runc reports it (in the
    /// background: `start` does not wait for it).
    fn follow_pid(&self) -> JoinHandle<()> {
        let runc = self.runc().clone();
        let id = self.id.clone();
        let pid = self.pid.clone();
        let exit = self.exit.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                if exit.get().is_some() {
                    return;
                }
                if let Ok(Some(s)) = runc.state(&id).await
                    && s.pid > 0
                    && s.status == "running"
                {
                    pid.store(s.pid, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    }

    /// Follows a container that is not the agent's child (left by a
    /// previous agent) by polling its state; its exit code is unknown.
    fn follow_adopted(&self) -> JoinHandle<()> {
        let runc = self.runc().clone();
        let id = self.id.clone();
        let exit = self.exit.clone();
        tokio::spawn(async move {
            loop {
                match runc.state(&id).await {
                    Ok(Some(s)) if s.is_alive() => {}
                    Ok(_) => break,
                    Err(e) => tracing::debug!(container = %id, error = %e, "state poll failed"),
                }
                tokio::time::sleep(POLL).await;
            }
            exit.set(ExitStatus::code(-1));
        })
    }

    /// One health check through `runc exec`.
    async fn run_check(&self, plan: &HealthPlan) -> Option<String> {
        let cmd = self.runc().exec(&self.id, &plan.argv);
        lifecycle::run_check_command(cmd, plan.timeout).await
    }
}

#[async_trait]
impl Controller for OciController {
    async fn prepare(&self) -> Result<(), ExecError> {
        let mut phase = self.phase.lock().await;
        match *phase {
            Phase::New => {}
            Phase::Removed => return Err(ExecError::State("task was removed")),
            _ => return Ok(()),
        }
        self.make_ready().await?;
        *phase = Phase::Prepared;
        Ok(())
    }

    async fn start(&self) -> Result<(), ExecError> {
        let mut phase = self.phase.lock().await;
        match *phase {
            Phase::Prepared => {}
            Phase::Started => return Ok(()),
            Phase::New => return Err(ExecError::State("start before prepare")),
            Phase::Stopped => return Err(ExecError::State("task was shut down")),
            Phase::Removed => return Err(ExecError::State("task was removed")),
        }
        let mut child = self
            .runc()
            .run(self.bundle.dir(), &self.id)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                command: self.runc().binary().display().to_string(),
                source,
            })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or(ExecError::State("the started runc has no pid"))?;
        self.runc_pid.store(pid, Ordering::SeqCst);
        let mut tasks = self.tasks.lock();
        if let Some(out) = child.stdout.take() {
            tasks.push(tokio::spawn(self.logs.clone().capture(out, false)));
        }
        if let Some(err) = child.stderr.take() {
            tasks.push(tokio::spawn(self.logs.clone().capture(err, true)));
        }
        let exit = self.exit.clone();
        tasks.push(tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => runc::exit_status(s),
                Err(_) => ExitStatus::code(-1),
            };
            exit.set(status);
        }));
        tasks.push(self.follow_pid());
        *phase = Phase::Started;
        Ok(())
    }

    async fn wait(&self) -> Result<ExitStatus, ExecError> {
        lifecycle::wait_allowed(&self.phase, self.exit.get().is_some()).await?;
        let Some(plan) = &self.health else {
            return Ok(self.exit.wait().await);
        };
        lifecycle::wait_checked(
            &self.task.id,
            plan,
            &self.health_state,
            &self.exit,
            || self.run_check(plan),
            || self.stop_started(Duration::ZERO, Signal::SIGKILL),
        )
        .await
    }

    async fn shutdown(&self, grace: Duration, signal: &str) -> Result<(), ExecError> {
        let signal = parse_signal(signal)?;
        if !lifecycle::shutdown_needs_stop(&self.phase).await {
            return Ok(());
        }
        self.stop_started(grace, signal).await
    }

    async fn terminate(&self) -> Result<(), ExecError> {
        self.shutdown(Duration::ZERO, "SIGKILL").await
    }

    async fn remove(&self) -> Result<(), ExecError> {
        let mut phase = self.phase.lock().await;
        if *phase == Phase::Started {
            self.stop_started(Duration::ZERO, Signal::SIGKILL).await?;
        }
        self.runc().delete(&self.id).await?;
        if let Some(attacher) = &self.shared.network
            && self.on_networks()
        {
            attacher.detach(&self.task.id).await;
        }
        self.bundle.remove()?;
        *phase = Phase::Removed;
        Ok(())
    }

    async fn recover(&self) -> Result<Recovered, ExecError> {
        let mut phase = self.phase.lock().await;
        if *phase != Phase::New {
            return Ok(if *phase == Phase::Started {
                Recovered::Running
            } else {
                Recovered::Gone
            });
        }
        match self.runc().state(&self.id).await? {
            Some(s) if s.status == "running" => {
                tracing::info!(task = %self.task.id, container = %self.id, "following a task container left by a previous agent");
                self.pid.store(s.pid, Ordering::SeqCst);
                self.tasks.lock().push(self.follow_adopted());
                *phase = Phase::Started;
                Ok(Recovered::Running)
            }
            Some(_) => {
                // Created but never started, paused or stopped: it goes.
                self.runc().delete(&self.id).await?;
                Ok(Recovered::Gone)
            }
            None => Ok(Recovered::Gone),
        }
    }

    fn container_status(&self) -> ContainerStatus {
        ContainerStatus {
            container_id: self.id.clone(),
            pid: self.pid.load(Ordering::SeqCst),
            exit_code: self.exit.get().map_or(0, |e| e.code),
        }
    }

    fn log_buffer(&self) -> Option<LogBuffer> {
        Some(self.logs.clone())
    }
}

impl Drop for OciController {
    fn drop(&mut self) {
        // The container outlives its controller (an agent restart finds it
        // again with `recover`); only the followers stop.
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}
