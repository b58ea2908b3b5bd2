//! `swarmctl`: drive a swarm-rs cluster. See [`swarm_examples::ctl`].

use clap::Parser;
use swarm_examples::ctl::{cli::Cli, commands};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
