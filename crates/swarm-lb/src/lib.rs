//! Service VIPs, kernel load balancing, the embedded DNS and the ingress
//! routing mesh for swarm-rs.
//!
//! Clients find a service by name and reach it through a stable virtual
//! IP balanced over its healthy tasks; published ports work on every node.
//!
//! # Load balancing
//!
//! [`LoadBalancer`] is the seam: create/update/delete a service
//! ([`ServiceSpec`]: VIP and ports), add, reweight, drain and remove
//! backends, list, and [`LoadBalancer::reconcile`] to a desired state after
//! a restart. Every call is idempotent. Three dataplanes implement it
//! through [`Balancer`] + [`Dataplane`]:
//!
//! - [`nft::NftBalancer`] (the default where nftables NAT exists): one
//!   table per namespace whose rules never change; a service is a set of
//!   map elements `VIP . slot -> backend` looked up with
//!   `numgen inc mod 64`, so balancing is round-robin over a weighted slot
//!   table ([`slots`]) and a change rewrites only that service's elements,
//!   in one atomic netlink transaction, independent of the number of
//!   services. Like Docker, a VIP forwards every port to the same port of
//!   a backend.
//! - [`ipvs::IpvsBalancer`]: IPVS over generic netlink (round-robin,
//!   masquerading), for kernels that have it.
//! - [`proxy::ProxyBalancer`]: a userspace TCP/UDP proxy on tokio, for
//!   hosts with neither.
//!
//! # DNS
//!
//! [`dns::RecordDb`] is the node's one record database (networks with
//! their `internal` flag, services with name, aliases, mode and VIP, tasks
//! with name and address, per network). [`dns::SandboxResolver`] serves
//! one task namespace at 127.0.0.11:53 (hickory-server with our own
//! request handler): `<service>` gives the VIP (or the task addresses in
//! DNS round-robin mode), `tasks.<service>` the task addresses (shuffled),
//! `<task name>` its address, reverse lookups the task or service name,
//! all with TTL 600, and only for networks the sandbox is attached to.
//! Other names are forwarded to the host's resolvers with a timeout,
//! unless every network of the sandbox is internal (then `REFUSED`).
//! Answers come from the database at query time, so a change is visible
//! on the next query: no stale VIP or task survives an update.
//!
//! # For the agent
//!
//! On each node, once:
//! - `let db = Arc::new(RecordDb::new())`, updated from assignments:
//!   [`dns::RecordDb::set_network`] ([`dns::network_record`]),
//!   [`dns::RecordDb::set_service`] ([`dns::service_record`]: name,
//!   aliases, mode and the VIP on that network),
//!   [`dns::RecordDb::set_task`] ([`dns::task_record`]) when a task starts
//!   running (and is healthy), [`dns::RecordDb::remove_task`] the moment
//!   it stops, [`dns::RecordDb::remove_service`] when the service goes.
//! - an [`nft::NftBalancer`] in the node's namespace for published ports:
//!   [`ingress::ingress_spec`] for every service with ingress ports, on
//!   every node, with all tasks' ingress-network addresses as backends;
//!   [`ingress::host_spec`] on the nodes running a task, with the local
//!   tasks as backends.
//!
//! Per task namespace, after the overlay endpoint exists:
//! - an [`nft::NftBalancer`] opened with `NftConfig::new(NetNs::Path(..))`
//!   (its own table; the overlay's tables are left alone), and for every
//!   service on the task's networks [`ingress::vip_spec`] with the tasks'
//!   addresses on that network, through [`LoadBalancer::set_service`]
//!   (whole service, one transaction) or [`LoadBalancer::set_backend`] /
//!   [`LoadBalancer::remove_backend`] as tasks come and go; on agent
//!   restart, [`LoadBalancer::reconcile`] with the full desired list
//!   before any other call (the table survives the restart, so traffic
//!   keeps flowing meanwhile);
//! - a [`dns::SandboxResolver`] started with the shared database, the
//!   task's network ids and the host's upstreams
//!   ([`dns::Upstreams::from_resolv_conf`]); drop it with the task.
//!
//! The ingress routing mesh and the source-address trade-off are
//! described in [`ingress`]. [`conformance`] holds the state-semantics
//! suite every [`LoadBalancer`] passes.
//!
//! # Limits
//!
//! - The nftables dataplane balances a service over at most 64 backends
//!   per address family (its slot count, configurable); forgetting the
//!   UDP flows of removed backends is done for IPv4 only.
//! - IPVS has no transactions: a change is a few requests applied in
//!   order. It serves VIP ports only (no firewall-mark services, no
//!   published ports).
//! - The userspace proxy serves the listed ports only, and backends see
//!   the proxy's address.
//! - Forwarded queries leave from the namespace of the process running
//!   the resolver (the host's, for an agent), like Docker's.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use swarm_lb::dns::{Lookup, NetworkRecord, RecordDb, ResolutionMode, ServiceRecord, TaskRecord};
//! use swarm_lb::{Backend, ServiceSpec, ServiceState, slots};
//!
//! // The node's record database, fed by the agent.
//! let db = Arc::new(RecordDb::new());
//! db.set_network(NetworkRecord { id: "net1".into(), internal: false });
//! db.set_service("net1", ServiceRecord {
//!     id: "svc1".into(),
//!     name: "web".into(),
//!     aliases: vec![],
//!     mode: ResolutionMode::Vip,
//!     vip: Some("10.0.1.2".parse()?),
//! })?;
//! db.set_task("net1", TaskRecord {
//!     id: "task1".into(),
//!     name: "web.1.task1".into(),
//!     service_id: "svc1".into(),
//!     addr: "10.0.1.3".parse()?,
//!     aliases: vec![],
//! })?;
//! let nets = vec!["net1".to_string()];
//! assert_eq!(db.lookup(&nets, "web"), Lookup::Found(vec!["10.0.1.2".parse()?]));
//! assert_eq!(db.lookup(&nets, "tasks.web"), Lookup::Found(vec!["10.0.1.3".parse()?]));
//!
//! // What a load balancer programs for that VIP: a weighted slot table.
//! let state = ServiceState::new(ServiceSpec::vip("svc1", "10.0.1.2".parse()?))
//!     .with_backends([Backend::new("10.0.1.3".parse()?), Backend::new("10.0.1.4".parse()?)]);
//! let backends: Vec<Backend> = state.backends.values().copied().collect();
//! let table = slots::assign(&backends, 64);
//! assert_eq!(table.len(), 64);
//! assert_ne!(table[0], table[1]); // consecutive connections alternate
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Programming a namespace needs root (not run here):
//!
//! ```no_run
//! use swarm_lb::nft::{NftBalancer, NftConfig};
//! use swarm_lb::{Backend, LoadBalancer, NetNs, ServiceSpec};
//!
//! let lb = NftBalancer::open(NftConfig::new(NetNs::named("task1")))?;
//! lb.ensure_service(&ServiceSpec::vip("svc1", "10.0.1.2".parse()?))?;
//! lb.set_backend("svc1", Backend::new("10.0.1.3".parse()?))?;
//! lb.drain_backend("svc1", "10.0.1.3".parse()?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod balancer;
pub mod conformance;
pub mod dns;
pub mod error;
pub mod ingress;
pub mod ipvs;
pub mod model;
pub mod netns;
pub mod nft;
mod nl;
pub mod proxy;
pub mod slots;

pub use balancer::{Balancer, Change, Dataplane, LoadBalancer};
pub use error::{LbError, Result};
pub use model::{
    Backend, PortSpec, Protocol, PublishMode, Published, ServiceId, ServiceSpec, ServiceState,
};
pub use netns::NetNs;
