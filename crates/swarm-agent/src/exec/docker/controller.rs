//! The controller of one task container.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerStateStatusEnum, ContainerSummary, Mount};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use nix::sys::signal::Signal;
use swarm_api::v1::{ContainerSpec, ContainerStatus, Task};
use tokio::task::JoinHandle;

use super::mounts::TaskFiles;
use super::sandbox::{self, Networking};
use super::spec::{self, Extras};
use super::wait::{self, is_running};
use super::{engine, health, image, labels, logs};
use crate::exec::lifecycle::{self, ExitCell, Phase};
use crate::exec::process::LogBuffer;
use crate::exec::process::health::HealthPlan;
use crate::exec::{Controller, Dependencies, ExecError, ExitStatus, Recovered, parse_signal};

/// What the executor gives each controller.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) docker: Docker,
    pub(super) dir: PathBuf,
    pub(super) network_mode: String,
    pub(super) pull_timeout: Duration,
    pub(super) logs: LogBuffer,
    /// The executor's networking, for a task with network attachments.
    pub(super) network: Option<Networking>,
}

/// Drives one task as a Docker container. See the [module docs](super).
#[derive(Debug)]
pub struct DockerController {
    docker: Docker,
    task: Task,
    spec: ContainerSpec,
    deps: Dependencies,
    name: String,
    files: TaskFiles,
    network_mode: String,
    pull_timeout: Duration,
    logs: LogBuffer,
    /// The executor's networking, for a task with network attachments.
    network: Option<Networking>,
    phase: tokio::sync::Mutex<Phase>,
    container: parking_lot::Mutex<Option<String>>,
    /// The task's network sandbox container, once started (or found).
    sandbox: parking_lot::Mutex<Option<String>>,
    pid: AtomicI32,
    exit: ExitCell,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    /// The container has a healthcheck (its own or its image's).
    watch_health: AtomicBool,
    unhealthy: parking_lot::Mutex<Option<String>>,
}

impl DockerController {
    /// A controller for `task`.
    pub(super) fn new(settings: Settings, task: &Task, deps: &Dependencies) -> Self {
        let (spec, mine) = deps.for_task(task);
        DockerController {
            docker: settings.docker,
            name: spec::container_name(task),
            task: task.clone(),
            spec,
            deps: mine,
            files: TaskFiles::new(settings.dir),
            network_mode: settings.network_mode,
            pull_timeout: settings.pull_timeout,
            logs: settings.logs,
            network: settings.network,
            phase: tokio::sync::Mutex::new(Phase::New),
            container: parking_lot::Mutex::new(None),
            sandbox: parking_lot::Mutex::new(None),
            pid: AtomicI32::new(0),
            exit: ExitCell::default(),
            tasks: parking_lot::Mutex::new(Vec::new()),
            watch_health: AtomicBool::new(false),
            unhealthy: parking_lot::Mutex::new(None),
        }
    }

    /// The container's name.
    pub fn container_name(&self) -> &str {
        &self.name
    }

    /// The container's id, once it was created (or found).
    pub fn container_id(&self) -> Option<String> {
        self.container.lock().clone()
    }

    /// The id of the task's network sandbox container, once it was started
    /// (or found).
    pub fn sandbox_id(&self) -> Option<String> {
        self.sandbox.lock().clone()
    }

    /// True when the agent left files of the task (secrets, configs).
    pub fn has_files(&self) -> bool {
        self.files.exists()
    }

    fn exited(&self) -> Option<ExitStatus> {
        self.exit.get()
    }

    async fn wait_exit(&self) -> ExitStatus {
        self.exit.wait().await
    }

    /// The engine's containers labelled with this task's id.
    async fn find_all(&self) -> Result<Vec<ContainerSummary>, ExecError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&labels::task_filter(&self.task.id))
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(engine::err("list the task's containers"))
    }

    /// Ids of the task's own containers (`sandboxes`: false) or of its
    /// network sandbox containers (true).
    async fn find(&self, sandboxes: bool) -> Result<Vec<String>, ExecError> {
        Ok(self
            .find_all()
            .await?
            .into_iter()
            .filter(|c| labels::is_sandbox(c.labels.as_ref()) == sandboxes)
            .filter_map(|c| c.id)
            .collect())
    }

    /// Creates the container in `network_mode`, or adopts one this task
    /// created before an agent restart and never started (one made for
    /// another sandbox is removed instead).
    async fn create(&self, network_mode: String, extra: Vec<Mount>) -> Result<String, ExecError> {
        for id in self.find(false).await? {
            let found = match self.docker.inspect_container(&id, None).await {
                Ok(c) => c,
                Err(e) if engine::is_not_found(&e) => continue,
                Err(e) => return Err(engine::err(format!("inspect container {id}"))(e)),
            };
            let created = found.state.as_ref().and_then(|s| s.status)
                == Some(ContainerStateStatusEnum::CREATED);
            let mode = found
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.as_deref());
            if !created {
                return Err(ExecError::State(
                    "a container of this task has already run on this node",
                ));
            }
            if mode == Some(network_mode.as_str()) {
                return Ok(id);
            }
            self.remove_container(&id).await?;
        }
        let mut file_mounts = self.files.mounts(&self.spec)?;
        file_mounts.extend(extra);
        let body = spec::create_body(
            &self.task,
            &self.spec,
            Extras {
                network_mode,
                file_mounts,
            },
        )?;
        let options = CreateContainerOptionsBuilder::new()
            .name(&self.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(engine::err(format!("create container {}", self.name)))?;
        Ok(created.id)
    }

    /// Follows a running container: its pid, its exit, its output, and
    /// whether its health is to be watched. Never fails: the container
    /// runs whatever the engine answers here.
    async fn follow(&self, id: &str) {
        match wait::state(&self.docker, id).await {
            Ok(Some(state)) => {
                let pid = state.pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
                self.pid.store(pid, Ordering::SeqCst);
                self.watch_health
                    .store(state.health.is_some(), Ordering::SeqCst);
            }
            // Gone already: the exit follower says so.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(task = %self.task.id, error = %e, "cannot inspect the started container");
                let has_check = HealthPlan::from_spec(self.spec.healthcheck.as_ref())
                    .is_ok_and(|p| p.is_some());
                self.watch_health.store(has_check, Ordering::SeqCst);
            }
        }
        let mut tasks = self.tasks.lock();
        tasks.push(tokio::spawn(wait::follow_exit(
            self.docker.clone(),
            id.to_string(),
            self.exit.sender(),
        )));
        tasks.push(tokio::spawn(logs::follow(
            self.docker.clone(),
            id.to_string(),
            self.logs.clone(),
        )));
    }

    async fn kill(&self, signal: Signal) -> Result<(), ExecError> {
        let Some(id) = self.container_id() else {
            return Ok(());
        };
        let options = KillContainerOptionsBuilder::new()
            .signal(signal.as_str())
            .build();
        match self.docker.kill_container(&id, Some(options)).await {
            Ok(()) => Ok(()),
            // Not running (any more), or gone: nothing to signal.
            Err(e) if engine::is_conflict(&e) || engine::is_not_found(&e) => Ok(()),
            Err(e) => Err(engine::err(format!("send {signal} to container {id}"))(e)),
        }
    }

    /// Stops a started container: `signal`, then SIGKILL after `grace`.
    async fn stop_started(&self, grace: Duration, signal: Signal) -> Result<(), ExecError> {
        lifecycle::stop_with_grace(
            &self.exit,
            grace,
            signal,
            |s| self.kill(s),
            "the task's container survived SIGKILL",
        )
        .await
    }

    /// Polls the container's health until the engine finds it unhealthy;
    /// returns why.
    async fn check_health(&self, id: &str) -> String {
        let interval = HealthPlan::from_spec(self.spec.healthcheck.as_ref())
            .ok()
            .flatten()
            .map(|p| p.interval);
        let poll = health::poll_interval(interval);
        loop {
            tokio::time::sleep(poll).await;
            match wait::state(&self.docker, id).await {
                Ok(Some(state)) => {
                    if let Some(why) = health::unhealthy(&state) {
                        return why;
                    }
                    if !is_running(&state) {
                        // The exit follower reports the end.
                        std::future::pending::<()>().await;
                    }
                }
                // Gone: the exit follower reports it.
                Ok(None) => std::future::pending::<()>().await,
                Err(e) => tracing::debug!(task = %self.task.id, error = %e, "health poll failed"),
            }
        }
    }

    /// Removes the task's own containers (`sandboxes`: false) or its
    /// network sandbox containers (true).
    async fn remove_containers(&self, sandboxes: bool) -> Result<(), ExecError> {
        let mut ids = self.find(sandboxes).await?;
        let known = if sandboxes {
            self.sandbox_id()
        } else {
            self.container_id()
        };
        if let Some(id) = known
            && !ids.contains(&id)
        {
            ids.push(id);
        }
        for id in ids {
            self.remove_container(&id).await?;
        }
        Ok(())
    }

    /// Removes container `id` (stopping it first); gone already is fine.
    async fn remove_container(&self, id: &str) -> Result<(), ExecError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // Gone, or already being removed.
            Err(e) if engine::is_not_found(&e) || engine::is_conflict(&e) => Ok(()),
            Err(e) => Err(engine::err(format!("remove container {id}"))(e)),
        }
    }

    /// The task's network mode and extra mounts: with a sandbox, starts it
    /// (or takes the running one an earlier attempt left) and attaches its
    /// namespace to the task's networks; on failure nothing of it is left.
    async fn prepare_network(&self) -> Result<(String, Vec<Mount>), ExecError> {
        let Some(net) = &self.network else {
            return Ok((self.network_mode.clone(), Vec::new()));
        };
        if !net.attacher.has_sandboxes() {
            // The no-op attacher: the books only; the task keeps the mode.
            net.attacher
                .attach(&self.task)
                .await
                .map_err(|e| ExecError::Network(e.to_string()))?;
            return Ok((self.network_mode.clone(), Vec::new()));
        }
        let binary = net.checked_binary()?;
        match self.attach_sandbox(net, binary).await {
            Ok(id) => {
                let resolv = sandbox::resolv_conf(self.files.dir())?;
                Ok((sandbox::network_mode(&id), vec![resolv]))
            }
            Err(e) => {
                net.attacher.detach(&self.task.id).await;
                if let Err(e) = self.remove_containers(true).await {
                    tracing::warn!(task = %self.task.id, error = %e, "removing a failed network sandbox");
                }
                *self.sandbox.lock() = None;
                Err(e)
            }
        }
    }

    /// Starts the sandbox and attaches it; returns its id.
    async fn attach_sandbox(&self, net: &Networking, binary: &Path) -> Result<String, ExecError> {
        let (id, pid) = self.start_sandbox(binary).await?;
        *self.sandbox.lock() = Some(id.clone());
        net.attacher
            .attach_into(&self.task, &proc_netns(pid))
            .await
            .map_err(|e| ExecError::Network(e.to_string()))?;
        Ok(id)
    }

    /// Starts the sandbox container, or takes the running one an earlier
    /// attempt left (others are removed); returns its id and pid.
    async fn start_sandbox(&self, binary: &Path) -> Result<(String, i64), ExecError> {
        for id in self.find(true).await? {
            match wait::state(&self.docker, &id).await? {
                Some(s) if is_running(&s) && s.pid.is_some_and(|p| p > 0) => {
                    return Ok((id, s.pid.unwrap_or_default()));
                }
                Some(_) => self.remove_container(&id).await?,
                None => {}
            }
        }
        let name = sandbox::name(&self.name);
        let body = sandbox::create_body(
            &self.task,
            &self.spec.image,
            &self.spec.hostname,
            binary,
            &name,
        );
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(engine::err(format!("create sandbox container {name}")))?
            .id;
        *self.sandbox.lock() = Some(id.clone());
        self.docker
            .start_container(&id, None)
            .await
            .map_err(engine::err(format!("start sandbox container {name}")))?;
        match wait::state(&self.docker, &id).await? {
            Some(s) if is_running(&s) && s.pid.is_some_and(|p| p > 0) => {
                Ok((id, s.pid.unwrap_or_default()))
            }
            _ => Err(ExecError::Engine {
                what: format!("start sandbox container {name}"),
                reason: "it is not running once started".into(),
            }),
        }
    }
}

impl DockerController {
    /// Undoes [`DockerController::prepare_network`] after a failure.
    async fn remove_network(&self) {
        if let Some(net) = &self.network {
            net.attacher.detach(&self.task.id).await;
            if let Err(e) = self.remove_containers(true).await {
                tracing::warn!(task = %self.task.id, error = %e, "removing a network sandbox");
            }
            *self.sandbox.lock() = None;
        }
    }

    /// After an agent restart: attaches the namespace of the running task
    /// (process `pid`, in its sandbox's namespace) to its networks again,
    /// as the DNS and the balancer lived in the previous agent.
    async fn reattach(&self, pid: i64) -> Result<(), ExecError> {
        let Some(net) = &self.network else {
            return Ok(());
        };
        if !net.attacher.has_sandboxes() {
            return net
                .attacher
                .attach(&self.task)
                .await
                .map(drop)
                .map_err(|e| ExecError::Network(e.to_string()));
        }
        if pid <= 0 {
            return Err(ExecError::State(
                "the engine reports no pid for the running task container",
            ));
        }
        net.attacher
            .attach_into(&self.task, &proc_netns(pid))
            .await
            .map(drop)
            .map_err(|e| ExecError::Network(e.to_string()))
    }
}

/// The network namespace file of process `pid`.
fn proc_netns(pid: i64) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

#[async_trait]
impl Controller for DockerController {
    async fn prepare(&self) -> Result<(), ExecError> {
        let mut phase = self.phase.lock().await;
        match *phase {
            Phase::New => {}
            Phase::Removed => return Err(ExecError::State("task was removed")),
            _ => return Ok(()),
        }
        spec::validate(&self.spec)?;
        image::ensure(&self.docker, &self.spec.image, self.pull_timeout).await?;
        self.files.write(&self.spec, &self.deps)?;
        let (mode, mounts) = self.prepare_network().await?;
        let id = match self.create(mode, mounts).await {
            Ok(id) => id,
            Err(e) => {
                self.remove_network().await;
                return Err(e);
            }
        };
        *self.container.lock() = Some(id);
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
        let id = self
            .container_id()
            .ok_or(ExecError::State("prepared without a container"))?;
        self.docker
            .start_container(&id, None)
            .await
            .map_err(engine::err(format!("start container {}", self.name)))?;
        *phase = Phase::Started;
        self.follow(&id).await;
        Ok(())
    }

    async fn wait(&self) -> Result<ExitStatus, ExecError> {
        lifecycle::wait_allowed(&self.phase, self.exited().is_some()).await?;
        if let Some(why) = self.unhealthy.lock().clone() {
            return Err(ExecError::Unhealthy(why));
        }
        let id = match self.container_id() {
            Some(id) if self.watch_health.load(Ordering::SeqCst) => id,
            _ => return Ok(self.wait_exit().await),
        };
        tokio::select! {
            exit = self.wait_exit() => Ok(exit),
            why = self.check_health(&id) => {
                if let Some(exit) = lifecycle::natural_end(self.wait_exit()).await {
                    return Ok(exit);
                }
                tracing::info!(task = %self.task.id, reason = %why, "task unhealthy: stopping it");
                *self.unhealthy.lock() = Some(why.clone());
                self.stop_started(Duration::ZERO, Signal::SIGKILL).await?;
                Err(ExecError::Unhealthy(why))
            }
        }
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
        self.remove_containers(false).await?;
        if let Some(net) = &self.network {
            net.attacher.detach(&self.task.id).await;
        }
        self.remove_containers(true).await?;
        *self.sandbox.lock() = None;
        self.files.remove()?;
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
        *self.sandbox.lock() = self.find(true).await?.into_iter().next();
        for id in self.find(false).await? {
            let Some(state) = wait::state(&self.docker, &id).await? else {
                continue;
            };
            *self.container.lock() = Some(id.clone());
            if is_running(&state) {
                tracing::info!(task = %self.task.id, container = %id, "following a task container left by a previous agent");
                self.reattach(state.pid.unwrap_or_default()).await?;
                *phase = Phase::Started;
                self.follow(&id).await;
                return Ok(Recovered::Running);
            }
            if let Some(code) = state.exit_code {
                self.exit.set(wait::exit_status(code));
            }
        }
        // Not running: what is left goes with `remove`.
        Ok(Recovered::Gone)
    }

    /// The container's id; the pid of its process as the engine reported
    /// it once started (0 when it had already ended by then).
    fn container_status(&self) -> ContainerStatus {
        ContainerStatus {
            container_id: self.container_id().unwrap_or_default(),
            pid: self.pid.load(Ordering::SeqCst),
            exit_code: self.exited().map_or(0, |e| e.code),
        }
    }

    fn log_buffer(&self) -> Option<LogBuffer> {
        Some(self.logs.clone())
    }
}

impl Drop for DockerController {
    fn drop(&mut self) {
        // The container outlives its controller (an agent restart finds it
        // again with `recover`); only the followers stop.
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}
