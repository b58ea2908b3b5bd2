//! How objects are shown: docker-like tables ([`crate::table`]) and JSON
//! (the serde form swarm-api generates, with readable enum names).
//!
//! Every function here is pure: objects (and, where ages are shown, the
//! current time) in, text out.

pub mod format;
pub mod logs;
pub mod networks;
pub mod nodes;
pub mod secrets;
pub mod services;
pub mod tasks;
pub mod time;

/// The first 12 characters of an id, as the docker CLI shows ids.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
