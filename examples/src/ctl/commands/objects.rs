//! `swarmctl secret ...` and `swarmctl config ...`.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use swarm_api::v1::*;

use super::Ctx;
use crate::ctl::cli::BlobCmd;
use crate::ctl::flags;
use crate::ctl::render::format::{Format, json};
use crate::ctl::render::secrets::{config_table, secret_table};
use crate::ctl::status::RequestError;

fn read_data(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

fn report(failed: usize, total: usize, what: &str) -> Result<()> {
    if failed > 0 {
        bail!("{failed} of {total} {what} could not be removed");
    }
    Ok(())
}

pub(super) async fn run_secret(ctx: &mut Ctx, cmd: BlobCmd) -> Result<()> {
    let mut c = ctx.clients.control.clone();
    match cmd {
        BlobCmd::Create { label, name, file } => {
            let spec = SecretSpec {
                annotations: Some(Annotations {
                    name,
                    labels: flags::labels("--label", &label)?,
                }),
                data: read_data(&file)?,
                driver: None,
            };
            let s = c
                .create_secret(CreateSecretRequest { spec: Some(spec) })
                .await
                .map_err(RequestError)?
                .into_inner()
                .secret
                .unwrap_or_default();
            ctx.line(&s.id)
        }
        BlobCmd::Ls { quiet } => {
            let list = c
                .list_secrets(ListSecretsRequest::default())
                .await
                .map_err(RequestError)?
                .into_inner()
                .secrets;
            if quiet {
                return list.iter().try_for_each(|s| ctx.line(&s.id));
            }
            match ctx.format {
                Format::Json => ctx.print(&json(&list)?),
                Format::Table => ctx.print(&secret_table(&list, SystemTime::now())),
            }
        }
        BlobCmd::Inspect { names } => {
            let mut found = Vec::new();
            for n in &names {
                found.push(
                    c.get_secret(GetSecretRequest {
                        secret_id: n.clone(),
                    })
                    .await
                    .map_err(RequestError)?
                    .into_inner()
                    .secret
                    .unwrap_or_default(),
                );
            }
            ctx.print(&json(&found)?)
        }
        BlobCmd::Rm { names } => {
            let mut failed = 0;
            for n in &names {
                match c
                    .remove_secret(RemoveSecretRequest {
                        secret_id: n.clone(),
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
            report(failed, names.len(), "secrets")
        }
    }
}

pub(super) async fn run_config(ctx: &mut Ctx, cmd: BlobCmd) -> Result<()> {
    let mut c = ctx.clients.control.clone();
    match cmd {
        BlobCmd::Create { label, name, file } => {
            let spec = ConfigSpec {
                annotations: Some(Annotations {
                    name,
                    labels: flags::labels("--label", &label)?,
                }),
                data: read_data(&file)?,
            };
            let s = c
                .create_config(CreateConfigRequest { spec: Some(spec) })
                .await
                .map_err(RequestError)?
                .into_inner()
                .config
                .unwrap_or_default();
            ctx.line(&s.id)
        }
        BlobCmd::Ls { quiet } => {
            let list = c
                .list_configs(ListConfigsRequest::default())
                .await
                .map_err(RequestError)?
                .into_inner()
                .configs;
            if quiet {
                return list.iter().try_for_each(|s| ctx.line(&s.id));
            }
            match ctx.format {
                Format::Json => ctx.print(&json(&list)?),
                Format::Table => ctx.print(&config_table(&list, SystemTime::now())),
            }
        }
        BlobCmd::Inspect { names } => {
            let mut found = Vec::new();
            for n in &names {
                found.push(
                    c.get_config(GetConfigRequest {
                        config_id: n.clone(),
                    })
                    .await
                    .map_err(RequestError)?
                    .into_inner()
                    .config
                    .unwrap_or_default(),
                );
            }
            ctx.print(&json(&found)?)
        }
        BlobCmd::Rm { names } => {
            let mut failed = 0;
            for n in &names {
                match c
                    .remove_config(RemoveConfigRequest {
                        config_id: n.clone(),
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
            report(failed, names.len(), "configs")
        }
    }
}
