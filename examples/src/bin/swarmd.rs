//! `swarmd`: a swarm-rs node. See [`swarm_examples::daemon`].

use clap::Parser;
use swarm_examples::daemon::{cli::Cli, logging, node};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    logging::init();
    let cli = Cli::parse();
    match node::run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("swarmd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
