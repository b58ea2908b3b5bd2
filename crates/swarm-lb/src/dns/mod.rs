//! The embedded DNS: one [`RecordDb`] per node, one [`SandboxResolver`]
//! per task namespace.

mod answer;
mod from_api;
mod handler;
mod records;
mod server;
mod upstream;

pub use answer::Addrs;
pub use from_api::{network_record, service_record, task_name, task_record};
pub use handler::{SandboxHandler, TTL};
pub use records::{
    Lookup, NetworkRecord, RecordDb, ResolutionMode, ServiceRecord, TaskRecord, normalize,
};
pub use server::{REDIRECT_TABLE, RESOLVER_ADDR, ResolverConfig, SandboxResolver, UDP_BUFFER};
pub use upstream::{DEFAULT_INFLIGHT, DEFAULT_TIMEOUT, Upstreams, parse_resolv_conf};
