//! `secret ls` and `config ls`.

use std::time::SystemTime;

use swarm_api::v1::{Annotations, Config, Meta, Secret};

use super::short_id;
use super::time::ago;
use crate::table::Table;

fn table<'a>(
    items: impl Iterator<Item = (&'a str, Option<&'a Annotations>, Option<&'a Meta>)>,
    now: SystemTime,
) -> String {
    let mut t = Table::new(["ID", "NAME", "CREATED", "UPDATED"]);
    let mut rows: Vec<_> = items
        .map(|(id, a, m)| {
            (
                a.map_or("", |a| a.name.as_str()).to_string(),
                id,
                m.and_then(|m| m.created_at.as_ref()),
                m.and_then(|m| m.updated_at.as_ref()),
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (name, id, created, updated) in rows {
        t.row([
            short_id(id).to_string(),
            name,
            ago(created, now),
            ago(updated, now),
        ]);
    }
    t.render()
}

/// `secret ls`: ID NAME CREATED UPDATED.
pub fn secret_table(secrets: &[Secret], now: SystemTime) -> String {
    table(
        secrets.iter().map(|s| {
            (
                s.id.as_str(),
                s.spec.as_ref().and_then(|x| x.annotations.as_ref()),
                s.meta.as_ref(),
            )
        }),
        now,
    )
}

/// `config ls`: ID NAME CREATED UPDATED.
pub fn config_table(configs: &[Config], now: SystemTime) -> String {
    table(
        configs.iter().map(|c| {
            (
                c.id.as_str(),
                c.spec.as_ref().and_then(|x| x.annotations.as_ref()),
                c.meta.as_ref(),
            )
        }),
        now,
    )
}
