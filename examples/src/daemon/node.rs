//! Starting a node, waiting for a signal, stopping it cleanly.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::{GetNodeRequest, NodeAvailability, NodeRole, UpdateNodeRequest};
use swarm_manager::state::ManagerState;
use swarm_manager::{Manager, ManagerBuilder, ManagerError};
use swarm_raft::RaftConfig;
use tokio::sync::watch;

use super::cli::{Command, NodeOptions};
use super::worker::{self, Worker, WorkerConfig};
use crate::ctl::flags;

/// What the state directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Nothing: a new node.
    Nothing,
    /// A manager.
    Manager,
    /// A worker.
    Worker,
}

/// Looks at a state directory.
pub fn existing(state_dir: &Path) -> Result<Existing> {
    if ManagerState::load(state_dir)?.is_some() {
        Ok(Existing::Manager)
    } else if worker::has_state(state_dir) {
        Ok(Existing::Worker)
    } else {
        Ok(Existing::Nothing)
    }
}

/// The raft timings for a tick.
pub fn raft_config(tick: &str) -> Result<RaftConfig> {
    let tick = flags::duration("--raft-tick", tick)?;
    if tick < Duration::from_millis(10) {
        bail!("--raft-tick must be at least 10ms");
    }
    Ok(RaftConfig {
        heartbeat: tick,
        election_timeout: tick * swarm_api::defaults::RAFT_ELECTION_TICK,
        proposal_timeout: (tick * 20).max(Duration::from_secs(5)),
        ..RaftConfig::default()
    })
}

/// The manager to start for `opts`.
fn builder(opts: &NodeOptions) -> Result<ManagerBuilder> {
    let availability: NodeAvailability = flags::enum_value("--availability", &opts.availability)?;
    let mut b = ManagerBuilder::new(&opts.state_dir)
        .listen_addr(opts.listen_addr)
        .control_socket(opts.socket_path())
        .availability(availability)
        .raft_config(raft_config(&opts.raft_tick)?);
    if let Some(a) = &opts.advertise_addr {
        b = b.advertise_addr(a.clone());
    }
    if let Some(m) = opts.metrics_addr {
        b = b.metrics_addr(m);
    }
    Ok(b)
}

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// What `init` prints: the node and both join commands.
pub fn init_banner(node_id: &str, addr: &str, worker: &str, manager: &str) -> String {
    format!(
        "Swarm initialized: current node ({node_id}) is now a manager.\n\n\
         To add a worker to this swarm, run the following command:\n\n    \
         swarmd join --token {worker} {addr}\n\n\
         To add a manager to this swarm, run the following command:\n\n    \
         swarmd join --token {manager} {addr}\n\n"
    )
}

/// Sets the node labels given on the command line (the manager builder
/// takes none), through the local control socket.
async fn apply_labels(manager: &Manager, labels: &[String]) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let labels = flags::labels("--label", labels)?;
    let socket = manager
        .control_socket()
        .context("the manager serves no control socket")?;
    let mut control = ControlClient::new(swarm_manager::local::local_channel(socket).await?);
    for attempt in 0..5 {
        let node = control
            .get_node(GetNodeRequest {
                node_id: manager.node_id().to_string(),
            })
            .await?
            .into_inner()
            .node
            .unwrap_or_default();
        let mut spec = node.spec.clone().unwrap_or_default();
        let current = &mut spec.annotations.get_or_insert_with(Default::default).labels;
        if labels.iter().all(|(k, v)| current.get(k) == Some(v)) {
            return Ok(());
        }
        current.extend(labels.clone());
        let res = control
            .update_node(UpdateNodeRequest {
                node_id: node.id.clone(),
                node_version: node.meta.as_ref().map_or(0, |m| m.version),
                spec: Some(spec),
            })
            .await;
        match res {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == tonic::Code::Aborted && attempt < 4 => continue,
            Err(s) => bail!("setting node labels: {}", s.message()),
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Runs `swarmd` until a signal.
pub async fn run(cmd: Command) -> Result<()> {
    let is_run = matches!(cmd, Command::Run { .. });
    let (opts, join, force_new) = match cmd {
        Command::Init {
            node,
            force_new_cluster,
        } => (node, None, force_new_cluster),
        Command::Join {
            token,
            node,
            manager,
        } => (node, Some((manager, token)), false),
        Command::Run { node } => (node, None, false),
    };
    let found = existing(&opts.state_dir)?;
    let restarting = found != Existing::Nothing;
    if !restarting && is_run {
        bail!(
            "{} holds no node: use `swarmd init` or `swarmd join` first",
            opts.state_dir.display()
        );
    }
    if !restarting && force_new {
        bail!(
            "--force-new-cluster needs a state directory that holds a manager ({} holds nothing)",
            opts.state_dir.display()
        );
    }
    if restarting {
        tracing::info!(state_dir = %opts.state_dir.display(), "restarting from existing state");
    }
    if found == Existing::Worker {
        let w = start_worker(&opts, Vec::new(), None).await?;
        return serve(&opts, None, Some(w)).await;
    }

    let mut b = builder(&opts)?.force_new_cluster(force_new);
    if let Some((addr, token)) = &join {
        b = b.join(addr.clone(), token.clone());
    }
    let manager = match b.start().await {
        Ok(m) => m,
        Err(ManagerError::WorkerToken) => {
            // A worker token: the CA admitted this node as a worker (its
            // certificate is stored); it runs the agent only.
            let (addr, token) = join.clone().unwrap_or_default();
            let w = start_worker(&opts, vec![addr], Some(token)).await?;
            out(&format!(
                "This node joined a swarm as a worker ({}).\n",
                w.node_id()
            ));
            return serve(&opts, None, Some(w)).await;
        }
        Err(e) => return Err(e).context("starting the manager"),
    };
    tracing::info!(
        node_id = manager.node_id(),
        addr = manager.addr(),
        "manager started"
    );
    if !restarting && join.is_none() {
        if let Some(tokens) = manager.join_tokens() {
            out(&init_banner(
                manager.node_id(),
                manager.addr(),
                &tokens.worker.to_string(),
                &tokens.manager.to_string(),
            ));
        }
        apply_labels(&manager, &opts.label).await?;
    } else if join.is_some() && !restarting {
        out(&format!(
            "This node joined a swarm as a manager ({}).\n",
            manager.node_id()
        ));
        apply_labels(&manager, &opts.label).await?;
    }
    let worker = if opts.manager_only {
        None
    } else {
        match start_worker(&opts, vec![manager.addr().to_string()], None).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "running as a manager only");
                None
            }
        }
    };
    serve(&opts, Some(manager), worker).await
}

/// Runs the node until a signal, following its role: when the agent's
/// certificate turns to manager (a promotion) the manager starts and joins
/// raft; when it turns to worker (a demotion, after the leader removed it
/// from raft) the manager stops and its raft state is removed, so a
/// restart comes back as a worker. The agent and its tasks keep running
/// through both.
async fn serve(
    opts: &NodeOptions,
    mut manager: Option<Manager>,
    worker: Option<Worker>,
) -> Result<()> {
    let mut roles = worker.as_ref().map(Worker::role);
    let signal = terminated();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            s = &mut signal => {
                tracing::info!(signal = s?, "shutting down");
                break;
            }
            role = role_change(&mut roles) => match (role, manager.is_some()) {
                // A signal interrupts a promotion still retrying to join.
                (NodeRole::Manager, false) => tokio::select! {
                    m = promote(opts) => manager = Some(m?),
                    s = &mut signal => {
                        tracing::info!(signal = s?, "shutting down during the promotion");
                        break;
                    }
                },
                (NodeRole::Worker, true) => {
                    if let Some(m) = manager.take() {
                        demote(opts, m).await?;
                    }
                }
                _ => {}
            },
        }
    }
    if let Some(w) = worker {
        w.shutdown().await;
    }
    if let Some(m) = manager {
        m.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The next role the agent's certificate takes; never resolves once the
/// agent is gone (or when there is none).
async fn role_change(roles: &mut Option<watch::Receiver<NodeRole>>) -> NodeRole {
    if let Some(rx) = roles {
        if rx.changed().await.is_ok() {
            return *rx.borrow_and_update();
        }
        *roles = None;
    }
    std::future::pending().await
}

/// How long a promoted node keeps trying to join raft.
const PROMOTION_ATTEMPTS: u32 = 30;

/// Starts the manager of a promoted node, joining raft through the
/// managers the agent knows.
async fn promote(opts: &NodeOptions) -> Result<Manager> {
    tracing::info!("the node was promoted: starting the manager");
    let mut attempt = 0;
    loop {
        let managers = swarm_agent::managers::load_remembered(
            &opts.state_dir.join(swarm_agent::managers::MANAGERS_FILE),
        );
        match builder(opts)?.promoted(managers).start().await {
            Ok(m) => {
                tracing::info!(
                    node_id = m.node_id(),
                    addr = m.addr(),
                    "manager started after promotion"
                );
                out(&format!(
                    "This node was promoted to a manager ({}).\n",
                    m.node_id()
                ));
                return Ok(m);
            }
            Err(e) if attempt + 1 < PROMOTION_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "starting the manager after promotion; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context("starting the manager after promotion"),
        }
    }
}

/// Stops the manager of a demoted node and removes its raft state (the
/// leader removed it from raft before its certificate turned to worker).
async fn demote(opts: &NodeOptions, manager: Manager) -> Result<()> {
    tracing::info!(
        node_id = manager.node_id(),
        "the node was demoted: stopping the manager"
    );
    manager.shutdown().await;
    ManagerState::remove(&opts.state_dir).context("removing the manager state")?;
    out("This node was demoted to a worker.\n");
    Ok(())
}

async fn start_worker(
    opts: &NodeOptions,
    managers: Vec<String>,
    join_token: Option<String>,
) -> Result<Worker> {
    let availability: NodeAvailability = flags::enum_value("--availability", &opts.availability)?;
    Ok(worker::start(WorkerConfig {
        state_dir: opts.state_dir.clone(),
        managers,
        join_token,
        executor: opts.executor,
        images_dir: opts.images_dir.clone(),
        data_path_addr: opts.data_path_addr.clone(),
        labels: flags::labels("--label", &opts.label)?,
        hostname: opts.hostname.clone(),
        availability,
    })
    .await?)
}
