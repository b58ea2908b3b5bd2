//! The controller of one process task.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use swarm_api::v1::{ContainerSpec, ContainerStatus, Task};
use tokio::task::JoinHandle;

use super::health::{HealthPlan, HealthState};
use super::in_netns;
use super::pid_record::PidRecord;
use super::user::resolve_user;
use crate::exec::lifecycle::{self, ExitCell, Phase};
use crate::exec::{
    Controller, Dependencies, ExecError, ExitStatus, LogBuffer, Recovered, files, parse_signal,
};
use crate::network::{NetworkAttacher, RESOLV_CONF};

/// `PATH` given to tasks.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Drives one task as a child process. See the [module docs](super).
#[derive(Debug)]
pub struct ProcessController {
    task_id: String,
    spec: ContainerSpec,
    deps: Dependencies,
    dir: PathBuf,
    logs: LogBuffer,
    phase: tokio::sync::Mutex<Phase>,
    exit: ExitCell,
    pid: AtomicI32,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    health: Option<HealthPlan>,
    health_state: parking_lot::Mutex<Option<HealthState>>,
    /// The attacher and the task, for a task with network attachments.
    network: Option<(Arc<NetworkAttacher>, Box<Task>)>,
    /// The task's namespace once attached.
    netns: parking_lot::Mutex<Option<PathBuf>>,
}

impl ProcessController {
    /// A controller for `task` living in `dir`.
    pub fn new(task: &Task, deps: &Dependencies, dir: PathBuf, log_bytes: usize) -> Self {
        let (spec, mine) = deps.for_task(task);
        let health = HealthPlan::from_spec(spec.healthcheck.as_ref())
            .ok()
            .flatten();
        ProcessController {
            task_id: task.id.clone(),
            spec,
            deps: mine,
            dir,
            logs: LogBuffer::new(log_bytes),
            phase: tokio::sync::Mutex::new(Phase::New),
            exit: ExitCell::default(),
            pid: AtomicI32::new(0),
            tasks: parking_lot::Mutex::new(Vec::new()),
            // Invalid checks are refused by `prepare`.
            health,
            health_state: parking_lot::Mutex::new(None),
            network: None,
            netns: parking_lot::Mutex::new(None),
        }
    }

    /// Attaches the task to its networks at prepare (its process then runs
    /// in its own namespace) and detaches it at remove.
    pub fn with_network(mut self, attacher: Arc<NetworkAttacher>, task: Task) -> Self {
        self.network = Some((attacher, Box::new(task)));
        self
    }

    fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    fn secrets_dir(&self) -> PathBuf {
        self.dir.join("run").join("secrets")
    }

    fn configs_dir(&self) -> PathBuf {
        self.dir.join("configs")
    }

    /// The task's `/etc/resolv.conf` when it runs in a namespace of its own.
    fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }

    fn unsupported(what: &str) -> ExecError {
        ExecError::Unsupported {
            executor: super::EXECUTOR_NAME.to_string(),
            what: what.to_string(),
        }
    }

    /// Checks what the process executor can run.
    fn validate(&self) -> Result<(), ExecError> {
        let s = &self.spec;
        if s.command.is_empty() && s.args.is_empty() {
            return Err(ExecError::InvalidSpec(
                "the process executor needs a command".into(),
            ));
        }
        if !s.mounts.is_empty() {
            return Err(Self::unsupported("mounts"));
        }
        if !s.groups.is_empty() {
            return Err(Self::unsupported("supplementary groups"));
        }
        if !s.capability_add.is_empty() || !s.capability_drop.is_empty() {
            return Err(Self::unsupported("capabilities"));
        }
        if s.tty {
            return Err(Self::unsupported("tty"));
        }
        if s.read_only {
            return Err(Self::unsupported("read-only root filesystem"));
        }
        crate::exec::checks::env(s)?;
        parse_signal(&s.stop_signal)?;
        HealthPlan::from_spec(s.healthcheck.as_ref())?;
        Ok(())
    }

    fn argv(&self) -> Vec<String> {
        self.spec
            .command
            .iter()
            .chain(self.spec.args.iter())
            .cloned()
            .collect()
    }

    fn command(&self) -> Result<tokio::process::Command, ExecError> {
        self.command_for(&self.argv())
    }

    /// A command run like the task's own process (environment, user,
    /// directory, process group), e.g. a health check.
    fn command_for(&self, argv: &[String]) -> Result<tokio::process::Command, ExecError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| ExecError::InvalidSpec("empty command".into()))?;
        let user = if self.spec.user.is_empty() {
            None
        } else {
            Some(resolve_user(&self.spec.user)?)
        };
        let netns = self.netns.lock().clone();
        let mut cmd = match &netns {
            Some(ns) => {
                // The wrapper enters the namespace, covers resolv.conf and
                // drops to the user, each step exec'ing the next: the pid
                // and process group stay the task's.
                let wrapped = in_netns::wrap(ns, &self.resolv_conf(), user.as_ref(), argv)?;
                let mut c = tokio::process::Command::new(&wrapped[0]);
                c.args(&wrapped[1..]);
                c
            }
            None => {
                let mut c = tokio::process::Command::new(program);
                c.args(args);
                if let Some(u) = &user {
                    c.uid(u.uid).gid(u.gid);
                }
                c
            }
        };
        cmd.env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("SWARM_TASK_ID", &self.task_id)
            .env("SWARM_TASK_DIR", &self.dir)
            .env("SWARM_SECRETS_DIR", self.secrets_dir())
            .env("SWARM_CONFIGS_DIR", self.configs_dir());
        if !self.spec.hostname.is_empty() {
            cmd.env("HOSTNAME", &self.spec.hostname);
        }
        if let Some(home) = user.and_then(|u| u.home) {
            cmd.env("HOME", home);
        }
        for e in &self.spec.env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        let dir = if self.spec.dir.is_empty() {
            self.work_dir()
        } else {
            PathBuf::from(&self.spec.dir)
        };
        cmd.current_dir(dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(cmd)
    }

    fn exited(&self) -> Option<ExitStatus> {
        self.exit.get()
    }

    fn signal_group(&self, signal: Signal) -> Result<(), ExecError> {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid <= 0 {
            return Ok(());
        }
        match killpg(Pid::from_raw(pid), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(ExecError::Sys {
                what: format!("signal {signal} to process group {pid}"),
                source: e,
            }),
        }
    }

    /// Stops a started process: `signal`, then SIGKILL after `grace`.
    async fn stop_started(&self, grace: Duration, signal: Signal) -> Result<(), ExecError> {
        lifecycle::stop_with_grace(
            &self.exit,
            grace,
            signal,
            |s| std::future::ready(self.signal_group(s)),
            "the task's process survived SIGKILL",
        )
        .await?;
        // Whatever the process left behind in its group goes too.
        self.signal_group(Signal::SIGKILL)
    }

    /// One health check, run like the task's process: `None` when
    /// healthy, else why not.
    async fn run_check(&self, plan: &HealthPlan) -> Option<String> {
        match self.command_for(&plan.argv) {
            Ok(cmd) => lifecycle::run_check_command(cmd, plan.timeout).await,
            Err(e) => Some(e.to_string()),
        }
    }
}

#[async_trait]
impl Controller for ProcessController {
    async fn prepare(&self) -> Result<(), ExecError> {
        let mut phase = self.phase.lock().await;
        match *phase {
            Phase::New => {}
            Phase::Removed => return Err(ExecError::State("task was removed")),
            _ => return Ok(()),
        }
        self.validate()?;
        if !self.spec.user.is_empty() {
            resolve_user(&self.spec.user)?;
        }
        let work = self.work_dir();
        fs::create_dir_all(&work).map_err(ExecError::io(&work))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755))
            .map_err(ExecError::io(&self.dir))?;
        if !self.spec.dir.is_empty() && !std::path::Path::new(&self.spec.dir).is_dir() {
            return Err(ExecError::InvalidSpec(format!(
                "working directory {:?} does not exist on this node",
                self.spec.dir
            )));
        }
        files::write_configs(&self.configs_dir(), &self.spec.configs, &self.deps)?;
        files::write_secrets(&self.secrets_dir(), &self.spec.secrets, &self.deps)?;
        if let Some((attacher, task)) = &self.network {
            let ns = attacher
                .attach(task)
                .await
                .map_err(|e| ExecError::Network(e.to_string()))?;
            if ns.is_some() {
                let resolv = self.resolv_conf();
                fs::write(&resolv, RESOLV_CONF).map_err(ExecError::io(&resolv))?;
            }
            *self.netns.lock() = ns;
        }
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
        let mut cmd = self.command()?;
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            command: self.argv().first().cloned().unwrap_or_default(),
            source,
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or(ExecError::State("the started process has no pid"))?;
        self.pid.store(pid, Ordering::SeqCst);
        let record = PidRecord::of(pid).unwrap_or(PidRecord { pid, started: 0 });
        if let Err(e) = record.write(&self.dir) {
            tracing::warn!(task = %self.task_id, error = %e, "cannot write the pid file");
        }
        let mut tasks = self.tasks.lock();
        if let Some(out) = child.stdout.take() {
            tasks.push(tokio::spawn(self.logs.clone().capture(out, false)));
        }
        if let Some(err) = child.stderr.take() {
            tasks.push(tokio::spawn(self.logs.clone().capture(err, true)));
        }
        let exit = self.exit.sender();
        tasks.push(tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => ExitStatus::from(s),
                Err(_) => ExitStatus::code(-1),
            };
            exit.send_replace(Some(status));
        }));
        *phase = Phase::Started;
        Ok(())
    }

    async fn wait(&self) -> Result<ExitStatus, ExecError> {
        lifecycle::wait_allowed(&self.phase, self.exited().is_some()).await?;
        let Some(plan) = &self.health else {
            return Ok(self.exit.wait().await);
        };
        lifecycle::wait_checked(
            &self.task_id,
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
        if let Some((attacher, _)) = &self.network {
            attacher.detach(&self.task_id).await;
            *self.netns.lock() = None;
        }
        files::unmount(&self.secrets_dir())?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ExecError::io(&self.dir)(e)),
        }
        *phase = Phase::Removed;
        Ok(())
    }

    async fn recover(&self) -> Result<Recovered, ExecError> {
        // The process's output pipes died with the previous agent: it
        // cannot be followed, so whatever is left of it is stopped.
        let Some(record) = PidRecord::read(&self.dir) else {
            return Ok(Recovered::Gone);
        };
        let pid = record.pid;
        if record.is_same_process() {
            tracing::info!(task = %self.task_id, pid, "stopping a task process left by a previous agent");
            match killpg(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(ExecError::sys(format!("kill process group {pid}"))(e)),
            }
        }
        Ok(Recovered::Gone)
    }

    fn container_status(&self) -> ContainerStatus {
        let pid = self.pid.load(Ordering::SeqCst);
        ContainerStatus {
            container_id: if pid > 0 {
                pid.to_string()
            } else {
                String::new()
            },
            pid,
            exit_code: self.exited().map_or(0, |e| e.code),
        }
    }

    fn log_buffer(&self) -> Option<LogBuffer> {
        Some(self.logs.clone())
    }
}

impl Drop for ProcessController {
    fn drop(&mut self) {
        // A controller dropped with its process running (the agent
        // stopping) takes the whole process group down with it.
        if self.pid.load(Ordering::SeqCst) > 0 && self.exited().is_none() {
            let _ = self.signal_group(Signal::SIGKILL);
        }
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}
