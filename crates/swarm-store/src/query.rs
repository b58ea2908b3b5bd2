//! Queries over a kind's indexes.

use std::fmt;

use swarm_api::v1::{NodeRole, TaskState};

/// What to look up. Not every kind has every index: see
/// [`Object::INDEXES`](crate::Object::INDEXES); an unsupported query is an
/// error, never a silent full scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By<'a> {
    /// Every object of the kind.
    All,
    /// Ids starting with the prefix.
    IdPrefix(&'a str),
    /// Exact name, case-insensitive.
    Name(&'a str),
    /// Names starting with the prefix, case-insensitive.
    NamePrefix(&'a str),
    /// Tasks of a service.
    ServiceId(&'a str),
    /// Tasks on a node (`""` for unassigned tasks).
    NodeId(&'a str),
    /// Tasks of one slot of a replicated service.
    Slot(&'a str, u64),
    /// Tasks with a desired state.
    DesiredState(TaskState),
    /// Tasks in an observed state.
    TaskState(TaskState),
    /// Tasks (by attachment) or services (by spec) on a network id.
    NetworkId(&'a str),
    /// Objects with a label key, and value when given.
    Label(&'a str, Option<&'a str>),
    /// Nodes with a role.
    Role(NodeRole),
}

impl fmt::Display for By<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            By::All => write!(f, "all"),
            By::IdPrefix(p) => write!(f, "id prefix {p:?}"),
            By::Name(n) => write!(f, "name {n:?}"),
            By::NamePrefix(p) => write!(f, "name prefix {p:?}"),
            By::ServiceId(s) => write!(f, "service {s}"),
            By::NodeId(n) => write!(f, "node {n:?}"),
            By::Slot(s, n) => write!(f, "slot {s}.{n}"),
            By::DesiredState(s) => write!(f, "desired state {s}"),
            By::TaskState(s) => write!(f, "task state {s}"),
            By::NetworkId(n) => write!(f, "network {n}"),
            By::Label(k, Some(v)) => write!(f, "label {k}={v}"),
            By::Label(k, None) => write!(f, "label {k}"),
            By::Role(r) => write!(f, "role {r}"),
        }
    }
}
