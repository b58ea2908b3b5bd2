//! A conformance suite every [`Executor`] must pass.
//!
//! The suite drives controllers directly (no task manager) with small
//! POSIX shell scripts, so the executor must be able to run `/bin/sh`
//! (for container executors, give an image that has it through
//! [`Suite::base_spec`]) and must capture output in
//! [`Controller::logs`]: the suite reads a task's output to know when it
//! is ready and what it saw.
//!
//! Run every case as its own test with [`executor_conformance!`](crate::executor_conformance):
//!
//! ```no_run
//! use swarm_agent::conformance::Suite;
//! use swarm_agent::ProcessExecutor;
//!
//! fn suite() -> Suite {
//!     let root = std::env::temp_dir().join("my-executor-conformance");
//!     let executor = ProcessExecutor::new(&root);
//!     Suite::new(std::sync::Arc::new(executor))
//!         .leftovers(move |task_id| root.join(task_id).exists())
//! }
//!
//! swarm_agent::executor_conformance!(suite());
//! ```
//!
//! or all of them in sequence with [`Suite::run_all`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use swarm_api::v1::{ContainerSpec, Task, TaskSpec};

use crate::exec::{Controller, Dependencies, ExecError, Executor};

/// How long any single step may take before the case fails.
const STEP: Duration = Duration::from_secs(20);

/// A failed conformance case.
#[derive(Debug, thiserror::Error)]
#[error("conformance case {case}: {reason}")]
pub struct ConformanceError {
    /// The case.
    pub case: &'static str,
    /// What went wrong.
    pub reason: String,
}

type Leftovers = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The suite, for one executor.
#[derive(Clone)]
pub struct Suite {
    executor: Arc<dyn Executor>,
    base: ContainerSpec,
    leftovers: Option<Leftovers>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("executor", &self.executor.name())
            .finish_non_exhaustive()
    }
}

struct Case {
    name: &'static str,
}

impl Case {
    fn fail(&self, reason: impl std::fmt::Display) -> ConformanceError {
        ConformanceError {
            case: self.name,
            reason: reason.to_string(),
        }
    }

    async fn step<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, ExecError>>,
    ) -> Result<T, ConformanceError> {
        match tokio::time::timeout(STEP, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.fail(format!("{what}: {e}"))),
            Err(_) => Err(self.fail(format!("{what}: timed out after {STEP:?}"))),
        }
    }

    fn check(&self, ok: bool, what: impl std::fmt::Display) -> Result<(), ConformanceError> {
        if ok { Ok(()) } else { Err(self.fail(what)) }
    }

    /// Polls the controller's output until a line contains `needle`.
    async fn output(&self, c: &dyn Controller, needle: &str) -> Result<(), ConformanceError> {
        let deadline = Instant::now() + STEP;
        loop {
            if c.logs().iter().any(|l| l.line.contains(needle)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let lines: Vec<String> = c.logs().into_iter().map(|l| l.line).collect();
                return Err(self.fail(format!("no output line with {needle:?}; got {lines:?}")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The names of the cases, in the order [`Suite::run_all`] runs them.
pub const CASES: [&str; 9] = [
    "runs_to_completion",
    "failure_carries_exit_code",
    "shutdown_sends_stop_signal",
    "shutdown_kills_after_grace",
    "env_args_and_dir_are_applied",
    "prepare_is_idempotent",
    "shutdown_before_start",
    "remove_cleans_up",
    "output_can_be_followed",
];

impl Suite {
    /// The suite for `executor`.
    pub fn new(executor: Arc<dyn Executor>) -> Self {
        Suite {
            executor,
            base: ContainerSpec::default(),
            leftovers: None,
        }
    }

    /// The spec every case starts from (an image with `/bin/sh`, for
    /// container executors); the suite sets command, args, env and dir.
    pub fn base_spec(mut self, spec: ContainerSpec) -> Self {
        self.base = spec;
        self
    }

    /// A check that anything of the task with this id is left on the
    /// node (directories, containers, mounts); used after
    /// [`Controller::remove`].
    pub fn leftovers(mut self, f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.leftovers = Some(Arc::new(f));
        self
    }

    fn controller(
        &self,
        case: &Case,
        script: &str,
        edit: impl FnOnce(&mut ContainerSpec),
    ) -> Result<(Task, Box<dyn Controller>), ConformanceError> {
        let mut spec = self.base.clone();
        spec.command = vec!["/bin/sh".into(), "-c".into(), script.into()];
        edit(&mut spec);
        let task = Task {
            id: swarm_api::id::new_id(),
            spec: Some(TaskSpec {
                container: Some(spec),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = self
            .executor
            .controller(&task, &Dependencies::default())
            .map_err(|e| case.fail(format!("controller: {e}")))?;
        Ok((task, c))
    }

    /// Runs every case in turn.
    pub async fn run_all(&self) -> Result<(), ConformanceError> {
        self.runs_to_completion().await?;
        self.failure_carries_exit_code().await?;
        self.shutdown_sends_stop_signal().await?;
        self.shutdown_kills_after_grace().await?;
        self.env_args_and_dir_are_applied().await?;
        self.prepare_is_idempotent().await?;
        self.shutdown_before_start().await?;
        self.remove_cleans_up().await?;
        self.output_can_be_followed().await
    }

    /// A task that exits 0 ends with a successful exit status.
    pub async fn runs_to_completion(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[0] };
        let (_, c) = self.controller(&case, "echo done", |_| {})?;
        case.step("prepare", c.prepare()).await?;
        case.step("start", c.start()).await?;
        let exit = case.step("wait", c.wait()).await?;
        case.check(exit.success(), format!("exit {exit:?}, want success"))?;
        case.check(exit.check().is_ok(), "check() of a success is an error")?;
        case.output(c.as_ref(), "done").await?;
        case.step("remove", c.remove()).await
    }

    /// A failing command's exit code is in its status and in the error.
    pub async fn failure_carries_exit_code(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[1] };
        let (_, c) = self.controller(&case, "exit 3", |_| {})?;
        case.step("prepare", c.prepare()).await?;
        case.step("start", c.start()).await?;
        let exit = case.step("wait", c.wait()).await?;
        case.check(exit.code == 3, format!("exit {exit:?}, want code 3"))?;
        let err = exit
            .check()
            .err()
            .ok_or_else(|| case.fail("check() of exit 3 is not an error"))?;
        case.check(
            err.exit_code() == Some(3),
            format!("error {err} lacks the code"),
        )?;
        case.check(
            err.to_string().contains('3'),
            format!("error {err:?} does not say 3"),
        )?;
        case.check(
            c.container_status().exit_code == 3,
            "container status lacks the exit code",
        )?;
        case.step("remove", c.remove()).await
    }

    /// Shutdown sends the spec's stop signal, and returns once the
    /// process exited.
    pub async fn shutdown_sends_stop_signal(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[2] };
        let script = "trap 'exit 42' USR1; echo ready; while :; do sleep 0.05; done";
        let (_, c) = self.controller(&case, script, |_| {})?;
        case.step("prepare", c.prepare()).await?;
        case.step("start", c.start()).await?;
        case.output(c.as_ref(), "ready").await?;
        let began = Instant::now();
        case.step("shutdown", c.shutdown(Duration::from_secs(15), "SIGUSR1"))
            .await?;
        case.check(
            began.elapsed() < Duration::from_secs(10),
            "the stop signal was not honoured before the grace period",
        )?;
        let exit = case.step("wait", c.wait()).await?;
        case.check(
            exit.code == 42,
            format!("exit {exit:?}, want 42 from the trap"),
        )?;
        case.step("remove", c.remove()).await
    }

    /// A process ignoring the stop signal is killed once the grace period
    /// has passed, not before.
    pub async fn shutdown_kills_after_grace(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[3] };
        let script = "trap '' TERM; echo ready; while :; do sleep 0.05; done";
        let (_, c) = self.controller(&case, script, |_| {})?;
        case.step("prepare", c.prepare()).await?;
        case.step("start", c.start()).await?;
        case.output(c.as_ref(), "ready").await?;
        let grace = Duration::from_millis(400);
        let began = Instant::now();
        case.step("shutdown", c.shutdown(grace, "SIGTERM")).await?;
        let took = began.elapsed();
        case.check(
            took >= grace,
            format!("killed after {took:?}, before the grace period"),
        )?;
        let exit = case.step("wait", c.wait()).await?;
        case.check(
            exit.signal == Some(9),
            format!("exit {exit:?}, want SIGKILL"),
        )?;
        case.step("remove", c.remove()).await
    }

    /// Environment, arguments and working directory reach the process.
    pub async fn env_args_and_dir_are_applied(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[4] };
        let (_, c) = self.controller(&case, "echo \"got:$FOO:$1:$(pwd)\"", |s| {
            s.args = vec!["arg0".into(), "hello world".into()];
            s.env = vec!["FOO=bar=baz".into()];
            s.dir = "/tmp".into();
        })?;
        case.step("prepare", c.prepare()).await?;
        case.step("start", c.start()).await?;
        let exit = case.step("wait", c.wait()).await?;
        case.check(exit.success(), format!("exit {exit:?}"))?;
        case.output(c.as_ref(), "got:bar=baz:hello world:/tmp")
            .await?;
        case.step("remove", c.remove()).await
    }

    /// Preparing and starting twice runs one process.
    pub async fn prepare_is_idempotent(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[5] };
        let (_, c) = self.controller(&case, "echo once", |_| {})?;
        case.step("prepare", c.prepare()).await?;
        case.step("prepare again", c.prepare()).await?;
        case.step("start", c.start()).await?;
        case.step("start again", c.start()).await?;
        let exit = case.step("wait", c.wait()).await?;
        case.check(exit.success(), format!("exit {exit:?}"))?;
        case.output(c.as_ref(), "once").await?;
        let n = c.logs().iter().filter(|l| l.line == "once").count();
        case.check(n == 1, format!("{n} processes ran"))?;
        case.step("remove", c.remove()).await
    }

    /// A task shut down before it started never starts.
    pub async fn shutdown_before_start(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[6] };
        let (_, c) = self.controller(&case, "echo started", |_| {})?;
        case.step("prepare", c.prepare()).await?;
        case.step("shutdown", c.shutdown(Duration::from_secs(1), "SIGTERM"))
            .await?;
        case.check(c.start().await.is_err(), "start after shutdown succeeded")?;
        case.step("remove", c.remove()).await
    }

    /// Remove stops a running task and leaves nothing behind; removing
    /// twice is fine.
    pub async fn remove_cleans_up(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[7] };
        let (task, c) = self.controller(&case, "echo ready; exec sleep 600", |_| {})?;
        case.step("prepare", c.prepare()).await?;
        case.step("start", c.start()).await?;
        case.output(c.as_ref(), "ready").await?;
        if let Some(left) = &self.leftovers {
            case.check(
                left(&task.id),
                "the leftovers check sees nothing of a live task",
            )?;
        }
        case.step("remove", c.remove()).await?;
        let exit = case.step("wait after remove", c.wait()).await?;
        case.check(!exit.success(), format!("exit {exit:?} of a removed task"))?;
        case.step("remove again", c.remove()).await?;
        if let Some(left) = &self.leftovers {
            case.check(
                !left(&task.id),
                "something of the task is left after remove",
            )?;
        }
        Ok(())
    }
}

impl Suite {
    /// Output lines carry their stream (stdout or stderr) and a time; a
    /// reader of the log buffer gets the last lines, then follows the
    /// lines written after it was made.
    pub async fn output_can_be_followed(&self) -> Result<(), ConformanceError> {
        let case = Case { name: CASES[8] };
        let began = std::time::SystemTime::now() - Duration::from_secs(1);
        // The trap goes first: the shutdown signal follows the last line
        // read, and must not find the shell without it.
        let script =
            "trap 'echo later; exit 0' USR1; echo out; echo err >&2; while :; do sleep 0.05; done";
        let (_, c) = self.controller(&case, script, |_| {})?;
        let buffer = c
            .log_buffer()
            .ok_or_else(|| case.fail("the controller keeps no log buffer"))?;
        case.step("prepare", c.prepare()).await?;
        case.step("start", c.start()).await?;
        case.output(c.as_ref(), "out").await?;
        case.output(c.as_ref(), "err").await?;
        // The two lines come through different pipes: either order.
        let mut tail = buffer.reader(Some(2));
        let mut got: Vec<(String, bool)> = tail
            .read_now(100)
            .into_iter()
            .map(|l| (l.line, l.stderr))
            .collect();
        got.sort();
        case.check(
            got == [("err".to_string(), true), ("out".to_string(), false)],
            format!("tail of 2: {got:?}, want out (stdout) and err (stderr)"),
        )?;
        let mut fresh = buffer.reader(Some(0));
        case.check(fresh.read_now(100).is_empty(), "a tail of 0 has lines")?;
        case.step("shutdown", c.shutdown(Duration::from_secs(15), "SIGUSR1"))
            .await?;
        // The shell may also report the signal that reached its `sleep`:
        // read until the line written after the readers were made.
        for (name, reader) in [("tail", &mut tail), ("fresh", &mut fresh)] {
            let mut lines = Vec::new();
            while !lines
                .iter()
                .any(|l: &crate::exec::LogLine| l.line == "later")
            {
                let more = tokio::time::timeout(STEP, reader.read(100))
                    .await
                    .map_err(|_| case.fail(format!("{name} reader: followed only {lines:?}")))?;
                lines.extend(more);
            }
            case.check(
                lines
                    .iter()
                    .all(|l| l.line != "out" && l.line != "err" && l.timestamp >= began),
                format!("{name} reader read old lines again: {lines:?}"),
            )?;
            case.check(
                lines.iter().any(|l| l.line == "later" && !l.stderr),
                format!("{name} reader: \"later\" is not on stdout: {lines:?}"),
            )?;
        }
        case.step("remove", c.remove()).await
    }
}

/// Generates one `#[tokio::test]` per conformance case for the
/// [`Suite`] that `$suite` evaluates to (evaluated once per test, inside
/// the async test, so it may `.await`).
///
/// With `optional`, `$suite` evaluates to an `Option<Suite>`: `None`
/// skips the case (for executors that need something the machine may
/// lack, such as a Docker engine; say why on stderr when returning
/// `None`).
///
/// ```ignore
/// swarm_agent::executor_conformance!(optional my_suite().await);
/// ```
#[macro_export]
macro_rules! executor_conformance {
    (@cases [$($optional:ident)?] $suite:expr) => {
        $crate::executor_conformance!(@case [$($optional)?] $suite, runs_to_completion);
        $crate::executor_conformance!(@case [$($optional)?] $suite, failure_carries_exit_code);
        $crate::executor_conformance!(@case [$($optional)?] $suite, shutdown_sends_stop_signal);
        $crate::executor_conformance!(@case [$($optional)?] $suite, shutdown_kills_after_grace);
        $crate::executor_conformance!(@case [$($optional)?] $suite, env_args_and_dir_are_applied);
        $crate::executor_conformance!(@case [$($optional)?] $suite, prepare_is_idempotent);
        $crate::executor_conformance!(@case [$($optional)?] $suite, shutdown_before_start);
        $crate::executor_conformance!(@case [$($optional)?] $suite, remove_cleans_up);
        $crate::executor_conformance!(@case [$($optional)?] $suite, output_can_be_followed);
    };
    (@case [] $suite:expr, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let suite: $crate::conformance::Suite = $suite;
            if let Err(e) = suite.$name().await {
                panic!("{e}");
            }
        }
    };
    (@case [optional] $suite:expr, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let suite: Option<$crate::conformance::Suite> = $suite;
            let Some(suite) = suite else {
                eprintln!("skipped: {}", stringify!($name));
                return;
            };
            if let Err(e) = suite.$name().await {
                panic!("{e}");
            }
        }
    };
    (optional $suite:expr) => {
        $crate::executor_conformance!(@cases [optional] $suite);
    };
    ($suite:expr) => {
        $crate::executor_conformance!(@cases [] $suite);
    };
}
