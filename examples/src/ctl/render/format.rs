//! `--format`: a table for people, JSON for programs.

use serde::Serialize;

/// Output format of list and inspect commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Columns, like the docker CLI.
    #[default]
    Table,
    /// Pretty-printed JSON (an array for lists).
    Json,
}

/// Pretty JSON of `value`, with a final newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}
