//! `swarmctl secret ...` and `swarmctl config ...`.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::*;
use tonic::Status;
use tonic::transport::Channel;

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

/// The control API calls of one kind of blob object (secrets, configs):
/// the commands are the same for both.
trait BlobKind {
    /// The stored object.
    type Object: serde::Serialize;
    /// Plural for messages.
    const PLURAL: &'static str;
    fn id(o: &Self::Object) -> &str;
    async fn create(
        c: &mut Control,
        annotations: Annotations,
        data: Vec<u8>,
    ) -> Result<Self::Object, Status>;
    async fn list(c: &mut Control) -> Result<Vec<Self::Object>, Status>;
    async fn get(c: &mut Control, id: String) -> Result<Self::Object, Status>;
    async fn remove(c: &mut Control, id: String) -> Result<(), Status>;
    fn table(list: &[Self::Object], now: SystemTime) -> String;
}

type Control = ControlClient<Channel>;

/// Secrets.
struct Secrets;

impl BlobKind for Secrets {
    type Object = Secret;
    const PLURAL: &'static str = "secrets";
    fn id(o: &Secret) -> &str {
        &o.id
    }
    async fn create(
        c: &mut Control,
        annotations: Annotations,
        data: Vec<u8>,
    ) -> Result<Secret, Status> {
        let spec = SecretSpec {
            annotations: Some(annotations),
            data,
            driver: None,
        };
        let r = c
            .create_secret(CreateSecretRequest { spec: Some(spec) })
            .await?;
        Ok(r.into_inner().secret.unwrap_or_default())
    }
    async fn list(c: &mut Control) -> Result<Vec<Secret>, Status> {
        Ok(c.list_secrets(ListSecretsRequest::default())
            .await?
            .into_inner()
            .secrets)
    }
    async fn get(c: &mut Control, secret_id: String) -> Result<Secret, Status> {
        let r = c.get_secret(GetSecretRequest { secret_id }).await?;
        Ok(r.into_inner().secret.unwrap_or_default())
    }
    async fn remove(c: &mut Control, secret_id: String) -> Result<(), Status> {
        c.remove_secret(RemoveSecretRequest { secret_id })
            .await
            .map(drop)
    }
    fn table(list: &[Secret], now: SystemTime) -> String {
        secret_table(list, now)
    }
}

/// Configs.
struct Configs;

impl BlobKind for Configs {
    type Object = Config;
    const PLURAL: &'static str = "configs";
    fn id(o: &Config) -> &str {
        &o.id
    }
    async fn create(
        c: &mut Control,
        annotations: Annotations,
        data: Vec<u8>,
    ) -> Result<Config, Status> {
        let spec = ConfigSpec {
            annotations: Some(annotations),
            data,
        };
        let r = c
            .create_config(CreateConfigRequest { spec: Some(spec) })
            .await?;
        Ok(r.into_inner().config.unwrap_or_default())
    }
    async fn list(c: &mut Control) -> Result<Vec<Config>, Status> {
        Ok(c.list_configs(ListConfigsRequest::default())
            .await?
            .into_inner()
            .configs)
    }
    async fn get(c: &mut Control, config_id: String) -> Result<Config, Status> {
        let r = c.get_config(GetConfigRequest { config_id }).await?;
        Ok(r.into_inner().config.unwrap_or_default())
    }
    async fn remove(c: &mut Control, config_id: String) -> Result<(), Status> {
        c.remove_config(RemoveConfigRequest { config_id })
            .await
            .map(drop)
    }
    fn table(list: &[Config], now: SystemTime) -> String {
        config_table(list, now)
    }
}

pub(super) async fn run_secret(ctx: &mut Ctx, cmd: BlobCmd) -> Result<()> {
    run_blob::<Secrets>(ctx, cmd).await
}

pub(super) async fn run_config(ctx: &mut Ctx, cmd: BlobCmd) -> Result<()> {
    run_blob::<Configs>(ctx, cmd).await
}

async fn run_blob<K: BlobKind>(ctx: &mut Ctx, cmd: BlobCmd) -> Result<()> {
    let mut c = ctx.clients.control.clone();
    match cmd {
        BlobCmd::Create { label, name, file } => {
            let annotations = Annotations {
                name,
                labels: flags::labels("--label", &label)?,
            };
            let o = K::create(&mut c, annotations, read_data(&file)?)
                .await
                .map_err(RequestError)?;
            ctx.line(K::id(&o))
        }
        BlobCmd::Ls { quiet } => {
            let list = K::list(&mut c).await.map_err(RequestError)?;
            if quiet {
                return list.iter().try_for_each(|o| ctx.line(K::id(o)));
            }
            match ctx.format {
                Format::Json => ctx.print(&json(&list)?),
                Format::Table => ctx.print(&K::table(&list, SystemTime::now())),
            }
        }
        BlobCmd::Inspect { names } => {
            let mut found = Vec::new();
            for n in &names {
                found.push(K::get(&mut c, n.clone()).await.map_err(RequestError)?);
            }
            ctx.print(&json(&found)?)
        }
        BlobCmd::Rm { names } => {
            let mut failed = 0;
            for n in &names {
                match K::remove(&mut c, n.clone()).await {
                    Ok(()) => ctx.line(n)?,
                    Err(e) => {
                        failed += 1;
                        ctx.note(&format!("{n}: {}", RequestError(e)));
                    }
                }
            }
            report(failed, names.len(), K::PLURAL)
        }
    }
}
