//! `swarmctl cluster ...`.

use anyhow::{Result, anyhow};
use swarm_api::v1::*;

use super::Ctx;
use crate::ctl::cli::{ClusterCmd, Role};
use crate::ctl::flags;
use crate::ctl::render::format::json;
use crate::ctl::status::{RequestError, is_out_of_sequence};

pub(super) async fn run(ctx: &mut Ctx, cmd: ClusterCmd) -> Result<()> {
    match cmd {
        ClusterCmd::Inspect => {
            let c = get(ctx).await?;
            ctx.print(&json(&c)?)
        }
        ClusterCmd::Update {
            task_history_limit,
            dispatcher_heartbeat,
            cert_expiry,
            snapshot_interval,
        } => {
            let heartbeat = dispatcher_heartbeat
                .map(|h| flags::duration("--dispatcher-heartbeat", &h))
                .transpose()?;
            let expiry = cert_expiry
                .map(|h| flags::duration("--cert-expiry", &h))
                .transpose()?;
            update(ctx, KeyRotation::default(), |spec| {
                if let Some(n) = task_history_limit {
                    spec.orchestration
                        .get_or_insert_with(Default::default)
                        .task_history_retention_limit = n;
                }
                if let Some(h) = heartbeat {
                    spec.dispatcher
                        .get_or_insert_with(Default::default)
                        .heartbeat_period = Some(h.into());
                }
                if let Some(e) = expiry {
                    spec.ca_config
                        .get_or_insert_with(Default::default)
                        .node_cert_expiry = Some(e.into());
                }
                if let Some(s) = snapshot_interval {
                    spec.raft
                        .get_or_insert_with(Default::default)
                        .snapshot_interval = s;
                }
            })
            .await?;
            ctx.line("default")
        }
        ClusterCmd::JoinToken {
            rotate,
            quiet,
            role,
        } => {
            if rotate {
                let rotation = KeyRotation {
                    worker_join_token: role == Role::Worker,
                    manager_join_token: role == Role::Manager,
                    manager_unlock_key: false,
                };
                update(ctx, rotation, |_| {}).await?;
                if !quiet {
                    ctx.note(&format!(
                        "Successfully rotated {} join token.",
                        if role == Role::Worker {
                            "worker"
                        } else {
                            "manager"
                        }
                    ));
                }
            }
            let cluster = get(ctx).await?;
            let tokens = cluster
                .root_ca
                .and_then(|r| r.join_tokens)
                .ok_or_else(|| anyhow!("the cluster has no join tokens"))?;
            let token = match role {
                Role::Worker => tokens.worker,
                Role::Manager => tokens.manager,
            };
            if quiet {
                return ctx.line(&token);
            }
            let addr = leader_addr(ctx).await?;
            ctx.print(&join_text(role, &token, &addr))
        }
    }
}

/// What `join-token` prints.
pub(super) fn join_text(role: Role, token: &str, addr: &str) -> String {
    let who = match role {
        Role::Worker => "a worker",
        Role::Manager => "a manager",
    };
    format!(
        "To add {who} to this swarm, run the following command:\n\n    swarmd join --token {token} {addr}\n\n"
    )
}

async fn leader_addr(ctx: &mut Ctx) -> Result<String> {
    let nodes = ctx
        .clients
        .control
        .list_nodes(ListNodesRequest {
            roles: vec![NodeRole::Manager.into()],
            ..Default::default()
        })
        .await
        .map_err(RequestError)?
        .into_inner()
        .nodes;
    let managers: Vec<&ManagerStatus> = nodes
        .iter()
        .filter_map(|n| n.manager_status.as_ref())
        .collect();
    Ok(managers
        .iter()
        .find(|m| m.leader)
        .or(managers.first())
        .map(|m| m.addr.clone())
        .unwrap_or_else(|| "<manager address>".into()))
}

async fn get(ctx: &mut Ctx) -> Result<Cluster> {
    ctx.clients
        .control
        .list_clusters(ListClustersRequest::default())
        .await
        .map_err(RequestError)?
        .into_inner()
        .clusters
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the manager knows no cluster yet"))
}

async fn update(
    ctx: &mut Ctx,
    rotation: KeyRotation,
    change: impl Fn(&mut ClusterSpec),
) -> Result<Cluster> {
    let mut retried = false;
    loop {
        let current = get(ctx).await?;
        let mut spec = current.spec.clone().unwrap_or_default();
        change(&mut spec);
        let req = UpdateClusterRequest {
            cluster_id: current.id.clone(),
            cluster_version: current.meta.as_ref().map_or(0, |m| m.version),
            spec: Some(spec),
            rotation: Some(rotation),
        };
        match ctx.clients.control.update_cluster(req).await {
            Ok(r) => return Ok(r.into_inner().cluster.unwrap_or_default()),
            Err(s) if is_out_of_sequence(&s) && !retried => retried = true,
            Err(s) => return Err(RequestError(s).into()),
        }
    }
}
