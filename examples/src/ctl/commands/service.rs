//! `swarmctl service ...`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;

use super::Ctx;
use crate::ctl::cli::{ServiceCmd, WaitOptions};
use crate::ctl::flags::{self, FlagError};
use crate::ctl::progress::{Reporter, Verdict, assess};
use crate::ctl::render::format::{Format, json};
use crate::ctl::render::logs::LogLines;
use crate::ctl::render::services::{ReplicaCounts, ServiceRow, service_name, service_table};
use crate::ctl::render::tasks::{Names, task_table};
use crate::ctl::service_opts::{apply_update, create_spec};
use crate::ctl::status::{RequestError, is_out_of_sequence};

/// How often a rollout is polled.
const POLL: Duration = Duration::from_millis(250);

pub(super) async fn run(ctx: &mut Ctx, cmd: ServiceCmd) -> Result<()> {
    match cmd {
        ServiceCmd::Create { opts, wait } => {
            let spec = create_spec(&opts)?;
            let service = ctx
                .clients
                .control
                .create_service(CreateServiceRequest { spec: Some(spec) })
                .await
                .map_err(RequestError)?
                .into_inner()
                .service
                .unwrap_or_default();
            ctx.line(&service.id)?;
            finish(ctx, &service, &wait, false).await
        }
        ServiceCmd::Ls { quiet } => ls(ctx, quiet).await,
        ServiceCmd::Ps { services } => ps(ctx, &services).await,
        ServiceCmd::Inspect { services } => {
            let mut found = Vec::new();
            for s in &services {
                found.push(get(ctx, s).await?);
            }
            ctx.print(&json(&found)?)
        }
        ServiceCmd::Update {
            opts,
            rollback,
            wait,
            service,
        } => {
            let updated = update(ctx, &service, rollback, |spec| apply_update(&opts, spec)).await?;
            ctx.line(service_name(&updated))?;
            finish(ctx, &updated, &wait, rollback).await
        }
        ServiceCmd::Scale { pairs, wait } => {
            let mut targets = Vec::new();
            for p in &pairs {
                let (name, n) = flags::key_value("scale", p)?;
                let n: u64 = n.parse().map_err(|_| FlagError {
                    flag: "scale",
                    given: p.clone(),
                    reason: "expected SERVICE=REPLICAS with a number".into(),
                })?;
                targets.push((name, n));
            }
            let mut updated = Vec::new();
            for (name, n) in targets {
                let s = update(ctx, &name, false, |spec| scale(spec, n)).await?;
                ctx.line(&format!("{name} scaled to {n}"))?;
                updated.push(s);
            }
            for s in &updated {
                finish(ctx, s, &wait, false).await?;
            }
            Ok(())
        }
        ServiceCmd::Rollback { service, wait } => {
            let updated = update(ctx, &service, true, |_| Ok(())).await?;
            ctx.line(service_name(&updated))?;
            finish(ctx, &updated, &wait, true).await
        }
        ServiceCmd::Rm { services } => {
            let mut failed = 0;
            for s in &services {
                match ctx
                    .clients
                    .control
                    .remove_service(RemoveServiceRequest {
                        service_id: s.clone(),
                    })
                    .await
                {
                    Ok(_) => ctx.line(s)?,
                    Err(e) => {
                        failed += 1;
                        ctx.note(&format!("{s}: {}", RequestError(e)));
                    }
                }
            }
            if failed > 0 {
                bail!(
                    "{failed} of {} services could not be removed",
                    services.len()
                );
            }
            Ok(())
        }
        ServiceCmd::Logs {
            service,
            follow,
            tail,
            since,
            timestamps,
        } => {
            let since = since
                .as_deref()
                .map(|s| flags::since("--since", s, SystemTime::now()))
                .transpose()?;
            let options = LogSubscriptionOptions {
                follow,
                tail: tail.unwrap_or(-1),
                since: since.map(Into::into),
                ..Default::default()
            };
            logs(ctx, &service, options, timestamps).await
        }
    }
}

fn scale(spec: &mut ServiceSpec, n: u64) -> Result<(), FlagError> {
    match spec.mode.as_mut() {
        Some(Mode::Replicated(r)) => {
            r.replicas = n;
            Ok(())
        }
        Some(Mode::ReplicatedJob(j)) => {
            j.total_completions = n;
            Ok(())
        }
        _ => Err(FlagError {
            flag: "scale",
            given: n.to_string(),
            reason: "scale can only be used with replicated or replicated-job mode".into(),
        }),
    }
}

/// One service by name, id or id prefix.
pub(crate) async fn get(ctx: &mut Ctx, service: &str) -> Result<Service> {
    Ok(ctx
        .clients
        .control
        .get_service(GetServiceRequest {
            service_id: service.to_string(),
        })
        .await
        .map_err(RequestError)?
        .into_inner()
        .service
        .unwrap_or_default())
}

/// Tasks of the given services (all tasks when empty).
pub(crate) async fn tasks(ctx: &mut Ctx, service_ids: Vec<String>) -> Result<Vec<Task>> {
    Ok(ctx
        .clients
        .control
        .list_tasks(ListTasksRequest {
            service_ids,
            ..Default::default()
        })
        .await
        .map_err(RequestError)?
        .into_inner()
        .tasks)
}

/// Reads the service, changes its spec with `change` and writes it with
/// the version read; when another writer got there first, reads and
/// applies again, once.
pub(crate) async fn update(
    ctx: &mut Ctx,
    service: &str,
    rollback: bool,
    change: impl Fn(&mut ServiceSpec) -> Result<(), FlagError>,
) -> Result<Service> {
    let mut retried = false;
    loop {
        let current = get(ctx, service).await?;
        let mut spec = current.spec.clone().unwrap_or_default();
        change(&mut spec)?;
        let req = UpdateServiceRequest {
            service_id: current.id.clone(),
            service_version: current.meta.as_ref().map_or(0, |m| m.version),
            spec: Some(spec),
            rollback,
        };
        match ctx.clients.control.update_service(req).await {
            Ok(r) => return Ok(r.into_inner().service.unwrap_or_default()),
            Err(s) if is_out_of_sequence(&s) && !retried => retried = true,
            Err(s) => return Err(RequestError(s).into()),
        }
    }
}

async fn finish(
    ctx: &mut Ctx,
    service: &Service,
    wait: &WaitOptions,
    rollback: bool,
) -> Result<()> {
    if wait.detach {
        return Ok(());
    }
    let timeout = flags::duration("--timeout", &wait.timeout)?;
    follow(ctx, &service.id, timeout, rollback, !wait.quiet).await
}

/// Polls a service until it converges, printing progress lines (on stderr)
/// when `show`; fails on a paused or rolled-back update, or after
/// `timeout` with the tasks' errors.
pub(crate) async fn follow(
    ctx: &mut Ctx,
    service_id: &str,
    timeout: Duration,
    rollback: bool,
    show: bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reporter = Reporter::new();
    loop {
        let service = get(ctx, service_id).await?;
        let tasks = tasks(ctx, vec![service.id.clone()]).await?;
        let progress = assess(&service, &tasks, rollback);
        if show {
            for l in reporter.lines(&progress) {
                ctx.note(&format!("{}: {l}", service_name(&service)));
            }
        }
        match &progress.verdict {
            Verdict::Converged => return Ok(()),
            Verdict::Stopped(why) => bail!("service {}: {why}", service_name(&service)),
            Verdict::Converging => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let mut msg = format!(
                "service {} did not converge within {} ({} of {} tasks done)",
                service_name(&service),
                humantime::format_duration(timeout),
                progress.done,
                progress.total
            );
            for e in progress.errors.iter().rev().take(5) {
                msg.push_str("\n  ");
                msg.push_str(e);
            }
            bail!(msg);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn ls(ctx: &mut Ctx, quiet: bool) -> Result<()> {
    let services = ctx
        .clients
        .control
        .list_services(ListServicesRequest::default())
        .await
        .map_err(RequestError)?
        .into_inner()
        .services;
    if quiet {
        for s in &services {
            ctx.line(&s.id)?;
        }
        return Ok(());
    }
    if ctx.format == Format::Json {
        return ctx.print(&json(&services)?);
    }
    let all = tasks(ctx, Vec::new()).await?;
    ctx.print(&service_rows_table(&services, &all))
}

/// `service ls` of these services, sorted by name.
pub(crate) fn service_rows_table(services: &[Service], tasks: &[Task]) -> String {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by(|a, b| service_name(a).cmp(service_name(b)));
    let rows: Vec<ServiceRow<'_>> = sorted
        .into_iter()
        .map(|s| ServiceRow {
            service: s,
            counts: ReplicaCounts::of(s, tasks),
        })
        .collect();
    service_table(&rows)
}

/// Names of all nodes, for task tables.
pub(crate) async fn names(ctx: &mut Ctx) -> Result<Names> {
    let nodes = ctx
        .clients
        .control
        .list_nodes(ListNodesRequest::default())
        .await
        .map_err(RequestError)?
        .into_inner()
        .nodes;
    Ok(Names {
        nodes: nodes
            .iter()
            .map(|n| (n.id.clone(), crate::ctl::render::nodes::node_name(n)))
            .collect::<BTreeMap<_, _>>(),
    })
}

async fn ps(ctx: &mut Ctx, services: &[String]) -> Result<()> {
    let mut ids = Vec::new();
    for s in services {
        ids.push(get(ctx, s).await?.id);
    }
    let tasks = tasks(ctx, ids).await?;
    print_tasks(ctx, &tasks).await
}

/// Prints tasks as a table or JSON.
pub(crate) async fn print_tasks(ctx: &mut Ctx, tasks: &[Task]) -> Result<()> {
    if ctx.format == Format::Json {
        return ctx.print(&json(tasks)?);
    }
    let names = names(ctx).await?;
    ctx.print(&task_table(tasks, &names, SystemTime::now()))
}

/// `service logs`: the service's task lines, prefixed like docker's
/// (`web.1.<task id>@<node> | text`); the tasks' standard error goes to
/// standard error. Following, tasks started later are named as they come.
async fn logs(
    ctx: &mut Ctx,
    service: &str,
    options: LogSubscriptionOptions,
    timestamps: bool,
) -> Result<()> {
    let service = get(ctx, service).await?;
    let tasks = tasks(ctx, vec![service.id.clone()]).await?;
    let names = self::names(ctx).await?;
    let mut lines = LogLines::new(&tasks, names).timestamps(timestamps);
    // Tasks and nodes looked up once already (not to ask for each line).
    let mut looked_up = std::collections::BTreeSet::new();
    let mut stream = ctx
        .clients
        .logs
        .subscribe_logs(SubscribeLogsRequest {
            selector: Some(LogSelector {
                service_ids: vec![service.id.clone()],
                ..Default::default()
            }),
            options: Some(options),
        })
        .await
        .map_err(RequestError)?
        .into_inner();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(RequestError).context("log stream ended")?;
        for m in batch.messages {
            let c = m.context.clone().unwrap_or_default();
            if !lines.knows_task(&c.task_id) && looked_up.insert(c.task_id.clone()) {
                let task = ctx
                    .clients
                    .control
                    .get_task(GetTaskRequest {
                        task_id: c.task_id.clone(),
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().task);
                if let Some(task) = task {
                    lines.add_task(&task);
                }
            }
            if !lines.knows_node(&c.node_id) && looked_up.insert(c.node_id.clone()) {
                lines.set_names(self::names(ctx).await?);
            }
            let line = lines.line(&m);
            if m.stream == LogStream::Stderr as i32 {
                ctx.note(&line);
            } else {
                ctx.line(&line)?;
            }
        }
    }
    Ok(())
}
