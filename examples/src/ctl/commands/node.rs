//! `swarmctl node ...`.

use anyhow::{Result, bail};
use swarm_api::v1::*;

use super::Ctx;
use crate::ctl::cli::NodeCmd;
use crate::ctl::flags::{self, FlagError};
use crate::ctl::render::format::{Format, json};
use crate::ctl::render::nodes::node_table;
use crate::ctl::status::{RequestError, is_out_of_sequence};

pub(super) async fn run(ctx: &mut Ctx, cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Ls { quiet } => {
            let nodes = ctx
                .clients
                .control
                .list_nodes(ListNodesRequest::default())
                .await
                .map_err(RequestError)?
                .into_inner()
                .nodes;
            if quiet {
                for n in &nodes {
                    ctx.line(&n.id)?;
                }
                return Ok(());
            }
            match ctx.format {
                Format::Json => ctx.print(&json(&nodes)?),
                Format::Table => ctx.print(&node_table(&nodes, None)),
            }
        }
        NodeCmd::Inspect { nodes } => {
            let mut found = Vec::new();
            for n in &nodes {
                found.push(get(ctx, n).await?);
            }
            ctx.print(&json(&found)?)
        }
        NodeCmd::Update {
            availability,
            role,
            label_add,
            label_rm,
            node,
        } => {
            let availability = availability
                .map(|a| flags::enum_value::<NodeAvailability>("--availability", &a))
                .transpose()?;
            let role = role
                .map(|r| flags::enum_value::<NodeRole>("--role", &r))
                .transpose()?;
            let add = flags::labels("--label-add", &label_add)?;
            update(ctx, &node, |spec| {
                if let Some(a) = availability {
                    spec.set_availability(a);
                }
                if let Some(r) = role {
                    spec.set_desired_role(r);
                }
                let labels = &mut spec.annotations.get_or_insert_with(Default::default).labels;
                for k in &label_rm {
                    labels.remove(k);
                }
                labels.extend(add.clone());
                Ok(())
            })
            .await?;
            ctx.line(&node)
        }
        NodeCmd::Promote { nodes } => set_role(ctx, &nodes, NodeRole::Manager).await,
        NodeCmd::Demote { nodes } => set_role(ctx, &nodes, NodeRole::Worker).await,
        NodeCmd::Rm { force, nodes } => {
            let mut failed = 0;
            for n in &nodes {
                match ctx
                    .clients
                    .control
                    .remove_node(RemoveNodeRequest {
                        node_id: n.clone(),
                        force,
                    })
                    .await
                {
                    Ok(_) => ctx.line(n)?,
                    Err(e) => {
                        failed += 1;
                        ctx.note(&format!("{n}: {}", RequestError(e)));
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} nodes could not be removed", nodes.len());
            }
            Ok(())
        }
    }
}

async fn set_role(ctx: &mut Ctx, nodes: &[String], role: NodeRole) -> Result<()> {
    for n in nodes {
        update(ctx, n, |spec| {
            spec.set_desired_role(role);
            Ok(())
        })
        .await?;
        let what = if role == NodeRole::Manager {
            "promoted to a manager"
        } else {
            "demoted"
        };
        ctx.line(&format!("Node {n} {what} in the swarm."))?;
    }
    Ok(())
}

async fn get(ctx: &mut Ctx, node: &str) -> Result<Node> {
    Ok(ctx
        .clients
        .control
        .get_node(GetNodeRequest {
            node_id: node.to_string(),
        })
        .await
        .map_err(RequestError)?
        .into_inner()
        .node
        .unwrap_or_default())
}

/// A versioned node update, retried once on a concurrent change.
async fn update(
    ctx: &mut Ctx,
    node: &str,
    change: impl Fn(&mut NodeSpec) -> Result<(), FlagError>,
) -> Result<Node> {
    let mut retried = false;
    loop {
        let current = get(ctx, node).await?;
        let mut spec = current.spec.clone().unwrap_or_default();
        change(&mut spec)?;
        let req = UpdateNodeRequest {
            node_id: current.id.clone(),
            node_version: current.meta.as_ref().map_or(0, |m| m.version),
            spec: Some(spec),
        };
        match ctx.clients.control.update_node(req).await {
            Ok(r) => return Ok(r.into_inner().node.unwrap_or_default()),
            Err(s) if is_out_of_sequence(&s) && !retried => retried = true,
            Err(s) => return Err(RequestError(s).into()),
        }
    }
}
