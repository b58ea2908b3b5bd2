//! Running `swarmctl` commands against a manager.

mod cluster;
mod network;
mod node;
mod objects;
mod service;
mod stack;

use std::io::Write;

use anyhow::Result;

use super::cli::{Cli, Command};
use super::connect::Clients;
use super::render::format::Format;

/// What every command needs: the clients, the output format and stdout.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) clients: Clients,
    pub(crate) format: Format,
}

impl Ctx {
    /// Writes `text` to standard output as is.
    pub(crate) fn print(&self, text: &str) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    /// Writes one line to standard output.
    pub(crate) fn line(&self, text: &str) -> Result<()> {
        self.print(&format!("{text}\n"))
    }

    /// Progress for people, on standard error (stdout stays parseable).
    pub(crate) fn note(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let clients = Clients::connect(&cli.conn.target()).await?;
    let mut ctx = Ctx {
        clients,
        format: cli.format,
    };
    match cli.command {
        Command::Service(c) => service::run(&mut ctx, c).await,
        Command::Node(c) => node::run(&mut ctx, c).await,
        Command::Network(c) => network::run(&mut ctx, c).await,
        Command::Secret(c) => objects::run_secret(&mut ctx, c).await,
        Command::Config(c) => objects::run_config(&mut ctx, c).await,
        Command::Cluster(c) => cluster::run(&mut ctx, c).await,
        Command::Stack(c) => stack::run(&mut ctx, c).await,
    }
}
