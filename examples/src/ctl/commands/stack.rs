//! `swarmctl stack ...`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use swarm_api::v1::*;

use super::Ctx;
use super::network;
use super::service::{follow, print_tasks, service_rows_table, tasks};
use crate::ctl::cli::StackCmd;
use crate::ctl::compose;
use crate::ctl::flags;
use crate::ctl::render::format::{Format, json};
use crate::ctl::render::services::service_name;
use crate::ctl::stack::{NAMESPACE_LABEL, plan};
use crate::ctl::status::{RequestError, is_out_of_sequence};
use crate::table::Table;

/// How long `stack rm` keeps retrying networks still in use by tasks that
/// are shutting down.
const NETWORK_RM_PATIENCE: Duration = Duration::from_secs(20);

fn in_stack(name: &str) -> ListFilters {
    ListFilters {
        labels: BTreeMap::from([(NAMESPACE_LABEL.to_string(), name.to_string())]),
        ..Default::default()
    }
}

async fn services(ctx: &mut Ctx, filters: Option<ListFilters>) -> Result<Vec<Service>> {
    Ok(ctx
        .clients
        .control
        .list_services(ListServicesRequest { filters })
        .await
        .map_err(RequestError)?
        .into_inner()
        .services)
}

async fn networks(ctx: &mut Ctx, filters: Option<ListFilters>) -> Result<Vec<Network>> {
    Ok(ctx
        .clients
        .control
        .list_networks(ListNetworksRequest { filters })
        .await
        .map_err(RequestError)?
        .into_inner()
        .networks)
}

pub(super) async fn run(ctx: &mut Ctx, cmd: StackCmd) -> Result<()> {
    match cmd {
        StackCmd::Deploy {
            compose_file,
            wait,
            timeout,
            name,
        } => {
            let text = std::fs::read_to_string(&compose_file)
                .with_context(|| format!("reading {}", compose_file.display()))?;
            let file = compose::parse(&text)?;
            let plan = plan(&name, &file)?;
            let timeout = flags::duration("--timeout", &timeout)?;
            deploy(ctx, &plan, wait, timeout).await
        }
        StackCmd::Ls => {
            let all = services(ctx, None).await?;
            let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
            for s in &all {
                if let Some(ns) = s
                    .spec
                    .as_ref()
                    .and_then(|x| x.annotations.as_ref())
                    .and_then(|a| a.labels.get(NAMESPACE_LABEL))
                {
                    *stacks.entry(ns.clone()).or_default() += 1;
                }
            }
            if ctx.format == Format::Json {
                return ctx.print(&json(&stacks)?);
            }
            let mut t = Table::new(["NAME", "SERVICES"]);
            for (name, n) in stacks {
                t.row([name, n.to_string()]);
            }
            ctx.print(&t.render())
        }
        StackCmd::Ps { name } => {
            let ids: Vec<String> = services(ctx, Some(in_stack(&name)))
                .await?
                .into_iter()
                .map(|s| s.id)
                .collect();
            if ids.is_empty() {
                bail!("nothing found in stack: {name}");
            }
            let tasks = tasks(ctx, ids).await?;
            print_tasks(ctx, &tasks).await
        }
        StackCmd::Services { name } => {
            let list = services(ctx, Some(in_stack(&name))).await?;
            if list.is_empty() {
                bail!("nothing found in stack: {name}");
            }
            if ctx.format == Format::Json {
                return ctx.print(&json(&list)?);
            }
            let ids = list.iter().map(|s| s.id.clone()).collect();
            let tasks = tasks(ctx, ids).await?;
            ctx.print(&service_rows_table(&list, &tasks))
        }
        StackCmd::Rm { name } => remove(ctx, &name).await,
    }
}

async fn deploy(
    ctx: &mut Ctx,
    plan: &crate::ctl::stack::StackPlan,
    wait: bool,
    timeout: Duration,
) -> Result<()> {
    let existing_networks = networks(ctx, None).await?;
    let known = |name: &str| {
        existing_networks
            .iter()
            .any(|n| crate::ctl::render::networks::network_name(n).eq_ignore_ascii_case(name))
    };
    for ext in &plan.external_networks {
        if !known(ext) {
            bail!("network {ext:?} is declared as external, but could not be found");
        }
    }
    for spec in &plan.networks {
        let name = spec.annotations.as_ref().map_or("", |a| a.name.as_str());
        if !known(name) {
            ctx.line(&format!("Creating network {name}"))?;
            network::create(ctx, spec.clone()).await?;
        }
    }
    let all = services(ctx, None).await?;
    let mut ids = Vec::new();
    for spec in &plan.services {
        let name = spec
            .annotations
            .as_ref()
            .map_or(String::new(), |a| a.name.clone());
        let current = all
            .iter()
            .find(|s| service_name(s).eq_ignore_ascii_case(&name));
        let service = match current {
            Some(_) => {
                ctx.line(&format!("Updating service {name}"))?;
                replace(ctx, &name, spec).await?
            }
            None => {
                ctx.line(&format!("Creating service {name}"))?;
                ctx.clients
                    .control
                    .create_service(CreateServiceRequest {
                        spec: Some(spec.clone()),
                    })
                    .await
                    .map_err(RequestError)?
                    .into_inner()
                    .service
                    .unwrap_or_default()
            }
        };
        ids.push(service.id);
    }
    if wait {
        for id in &ids {
            follow(ctx, id, timeout, false, true).await?;
        }
    }
    Ok(())
}

/// Replaces a service's spec, versioned, retrying once on a concurrent
/// change.
async fn replace(ctx: &mut Ctx, name: &str, spec: &ServiceSpec) -> Result<Service> {
    let mut retried = false;
    loop {
        let current = super::service::get(ctx, name).await?;
        let mut spec = spec.clone();
        // Keep a forced-update counter going forward.
        if let (Some(new), Some(old)) = (
            spec.task.as_mut(),
            current.spec.as_ref().and_then(|s| s.task.as_ref()),
        ) {
            new.force_update = old.force_update;
        }
        let req = UpdateServiceRequest {
            service_id: current.id.clone(),
            service_version: current.meta.as_ref().map_or(0, |m| m.version),
            spec: Some(spec),
            rollback: false,
        };
        match ctx.clients.control.update_service(req).await {
            Ok(r) => return Ok(r.into_inner().service.unwrap_or_default()),
            Err(s) if is_out_of_sequence(&s) && !retried => retried = true,
            Err(s) => return Err(RequestError(s).into()),
        }
    }
}

async fn remove(ctx: &mut Ctx, name: &str) -> Result<()> {
    let list = services(ctx, Some(in_stack(name))).await?;
    let nets = networks(ctx, Some(in_stack(name))).await?;
    if list.is_empty() && nets.is_empty() {
        bail!("nothing found in stack: {name}");
    }
    for s in &list {
        ctx.line(&format!("Removing service {}", service_name(s)))?;
        ctx.clients
            .control
            .remove_service(RemoveServiceRequest {
                service_id: s.id.clone(),
            })
            .await
            .map_err(RequestError)?;
    }
    let deadline = tokio::time::Instant::now() + NETWORK_RM_PATIENCE;
    for n in &nets {
        let net_name = crate::ctl::render::networks::network_name(n).to_string();
        ctx.line(&format!("Removing network {net_name}"))?;
        loop {
            match network::remove(ctx, &n.id).await {
                Ok(()) => break,
                // Tasks of the removed services may still hold addresses.
                Err(e)
                    if tokio::time::Instant::now() < deadline
                        && e.0.code() == tonic::Code::FailedPrecondition =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("removing network {net_name}")),
            }
        }
    }
    Ok(())
}
