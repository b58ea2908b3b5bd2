//! The demo: a local cluster of 3 managers and 3 workers doing real work
//! through failures, run by `swarm-demo` (`bash scripts/demo`) and by the
//! end-to-end tests, which check the same steps.
//!
//! Each [`Step`] is timed and either passes its check or fails the demo
//! with the reason; [`Demo::summary`] prints the table at the end.

mod scenario;

use std::time::{Duration, Instant};

pub use scenario::{WEB_REPLICAS, WORKERS, run};

use crate::local::{LocalCluster, LocalError};

/// How long any one step may take before the demo fails.
pub const STEP_LIMIT: Duration = Duration::from_secs(90);

/// One finished step of the demo.
#[derive(Debug, Clone)]
pub struct Step {
    /// What happened.
    pub what: String,
    /// How long it took.
    pub took: Duration,
    /// What was checked at the end of it.
    pub result: String,
}

/// Runs steps against a cluster, narrating unless quiet.
#[derive(Debug)]
pub struct Demo {
    /// The cluster.
    pub cluster: LocalCluster,
    /// The first three octets of the nodes' loopback addresses, e.g.
    /// `127.0.0` (nodes get `.1` to `.6`).
    pub network: String,
    quiet: bool,
    steps: Vec<Step>,
}

impl Demo {
    /// A demo over `cluster` with nodes in `network` (e.g. `127.0.0`);
    /// `quiet` prints nothing (tests).
    pub fn new(cluster: LocalCluster, network: &str, quiet: bool) -> Demo {
        Demo {
            cluster,
            network: network.to_string(),
            quiet,
            steps: Vec::new(),
        }
    }

    /// Prints a line unless quiet.
    pub fn say(&self, text: &str) {
        if !self.quiet {
            emit(&format!("{text}\n"));
        }
    }

    /// Runs `swarmctl args`, echoing the command and its output.
    pub fn ctl(&self, args: &[&str]) -> Result<String, LocalError> {
        self.say(&format!("$ swarmctl {}", args.join(" ")));
        let out = self.cluster.ctl(args)?;
        if !self.quiet {
            emit(&out);
            if !out.is_empty() && !out.ends_with('\n') {
                emit("\n");
            }
        }
        Ok(out)
    }

    /// Starts a step: prints its title and returns its start time.
    pub fn begin(&self, title: &str) -> Instant {
        self.say(&format!("\n==> {title}"));
        Instant::now()
    }

    /// Records a finished step.
    pub fn end(&mut self, what: &str, start: Instant, result: impl Into<String>) {
        let step = Step {
            what: what.to_string(),
            took: start.elapsed(),
            result: result.into(),
        };
        self.say(&format!(
            "    ok ({:.1}s): {}",
            step.took.as_secs_f64(),
            step.result
        ));
        self.steps.push(step);
    }

    /// The steps so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The summary table.
    pub fn summary(&self) -> String {
        let width = self.steps.iter().map(|s| s.what.len()).max().unwrap_or(4);
        let mut out = format!("{:<width$}  {:>7}  RESULT\n", "STEP", "SECONDS");
        for s in &self.steps {
            out.push_str(&format!(
                "{:<width$}  {:>7.1}  {}\n",
                s.what,
                s.took.as_secs_f64(),
                s.result
            ));
        }
        out
    }
}

/// Writes to standard output (a closed stdout is not the demo's failure).
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
