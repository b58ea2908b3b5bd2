//! `swarmctl network ...`.

use anyhow::{Result, bail};
use swarm_api::v1::*;

use super::Ctx;
use crate::ctl::cli::NetworkCmd;
use crate::ctl::flags;
use crate::ctl::render::format::{Format, json};
use crate::ctl::render::networks::network_table;
use crate::ctl::status::RequestError;

pub(super) async fn run(ctx: &mut Ctx, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            internal,
            attachable,
            label,
            opt,
            name,
        } => {
            let configs = subnet
                .iter()
                .enumerate()
                .map(|(i, s)| IpamConfig {
                    subnet: s.clone(),
                    gateway: if i == 0 {
                        gateway.clone().unwrap_or_default()
                    } else {
                        String::new()
                    },
                    ..Default::default()
                })
                .collect::<Vec<_>>();
            if gateway.is_some() && configs.is_empty() {
                bail!("--gateway needs --subnet");
            }
            let spec = NetworkSpec {
                annotations: Some(Annotations {
                    name,
                    labels: flags::labels("--label", &label)?,
                }),
                driver_config: Some(Driver {
                    name: driver,
                    options: flags::labels("--opt", &opt)?,
                }),
                internal,
                attachable,
                ipam: (!configs.is_empty()).then_some(IpamOptions {
                    driver: None,
                    configs,
                }),
                ..Default::default()
            };
            let n = create(ctx, spec).await?;
            ctx.line(&n.id)
        }
        NetworkCmd::Ls { quiet } => {
            let networks = ctx
                .clients
                .control
                .list_networks(ListNetworksRequest::default())
                .await
                .map_err(RequestError)?
                .into_inner()
                .networks;
            if quiet {
                for n in &networks {
                    ctx.line(&n.id)?;
                }
                return Ok(());
            }
            match ctx.format {
                Format::Json => ctx.print(&json(&networks)?),
                Format::Table => ctx.print(&network_table(&networks)),
            }
        }
        NetworkCmd::Inspect { networks } => {
            let mut found = Vec::new();
            for n in &networks {
                found.push(
                    ctx.clients
                        .control
                        .get_network(GetNetworkRequest {
                            network_id: n.clone(),
                        })
                        .await
                        .map_err(RequestError)?
                        .into_inner()
                        .network
                        .unwrap_or_default(),
                );
            }
            ctx.print(&json(&found)?)
        }
        NetworkCmd::Rm { networks } => {
            let mut failed = 0;
            for n in &networks {
                match remove(ctx, n).await {
                    Ok(()) => ctx.line(n)?,
                    Err(e) => {
                        failed += 1;
                        ctx.note(&format!("{n}: {e}"));
                    }
                }
            }
            if failed > 0 {
                bail!(
                    "{failed} of {} networks could not be removed",
                    networks.len()
                );
            }
            Ok(())
        }
    }
}

/// Creates a network.
pub(crate) async fn create(ctx: &mut Ctx, spec: NetworkSpec) -> Result<Network> {
    Ok(ctx
        .clients
        .control
        .create_network(CreateNetworkRequest { spec: Some(spec) })
        .await
        .map_err(RequestError)?
        .into_inner()
        .network
        .unwrap_or_default())
}

/// Removes a network by name or id.
pub(crate) async fn remove(ctx: &mut Ctx, network: &str) -> Result<(), RequestError> {
    ctx.clients
        .control
        .remove_network(RemoveNetworkRequest {
            network_id: network.to_string(),
        })
        .await?;
    Ok(())
}
