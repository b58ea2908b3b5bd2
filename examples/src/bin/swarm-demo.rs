//! `swarm-demo`: a real local cluster (3 managers, 3 workers, each a
//! `swarmd` process on its own loopback address) deploying services and
//! repairing itself through killed nodes, a rolling update and a drain.
//! `bash scripts/demo` builds and runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use swarm_examples::demo::{self, Demo};
use swarm_examples::local::{Binaries, ClusterOptions, LocalCluster};

/// Runs the swarm-rs demo cluster.
#[derive(Debug, Parser)]
#[command(name = "swarm-demo", version, about)]
struct Cli {
    /// Directory for the nodes' state and logs [default: a new temporary
    /// directory].
    #[arg(long)]
    root: Option<PathBuf>,
    /// Port every node listens on (each node has its own 127.0.0.x).
    #[arg(long, default_value_t = 24242)]
    port: u16,
    /// Keep the state directory and the logs afterwards.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarm-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let root = match cli.root {
        Some(r) => r,
        None => std::env::temp_dir().join(format!("swarm-demo-{}", std::process::id())),
    };
    let keep = cli.keep;
    let bins = Binaries::beside_current_exe()?;
    let cluster = LocalCluster::new(
        bins,
        ClusterOptions {
            root: root.clone(),
            port: cli.port,
            raft_tick: "100ms".into(),
            keep,
        },
    )?;
    say(&format!(
        "swarm-rs demo: state and logs in {}",
        root.display()
    ));
    let mut d = Demo::new(cluster, "127.0.0", false);
    let result = demo::run(&mut d).await;
    say(&format!("\n{}", d.summary()));
    match result {
        Ok(()) => {
            say("The cluster converged after every step.");
            if keep {
                say(&format!("Logs kept in {}.", root.display()));
            }
            Ok(())
        }
        Err(e) => {
            // Stop the nodes but keep the logs that explain the failure.
            d.cluster.keep_files();
            eprintln!("logs kept in {}", root.display());
            Err(e.into())
        }
    }
}

/// Prints a line on standard output.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}
