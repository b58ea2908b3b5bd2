//! The example binaries of swarm-rs: `swarmd`, a node daemon (manager, and
//! worker once `swarm-agent` is wired in), and `swarmctl`, the command line
//! that drives a cluster through a manager's control API.
//!
//! The binaries themselves (`src/bin/`) only parse arguments and call into
//! this library, which holds the small pieces they are made of: turning
//! flags and compose files into specs ([`ctl::flags`], [`ctl::compose`]),
//! rendering objects as docker-like tables or JSON ([`ctl::render`]),
//! following a service until it converges ([`ctl::progress`]), and starting
//! a manager with clean shutdown ([`daemon`]).
//!
//! # Example: render a service list as `swarmctl service ls` does
//!
//! ```
//! use swarm_api::v1::service_spec::Mode;
//! use swarm_api::v1::{Annotations, ContainerSpec, ReplicatedService, Service, ServiceSpec, TaskSpec};
//! use swarm_examples::ctl::render::services::{ReplicaCounts, ServiceRow, service_table};
//!
//! let service = Service {
//!     id: "3f2a9c1d0e7b4a6c8d9e0f1a2".into(),
//!     spec: Some(ServiceSpec {
//!         annotations: Some(Annotations { name: "web".into(), ..Default::default() }),
//!         task: Some(TaskSpec {
//!             container: Some(ContainerSpec { image: "busybox".into(), ..Default::default() }),
//!             ..Default::default()
//!         }),
//!         mode: Some(Mode::Replicated(ReplicatedService { replicas: 3 })),
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! };
//! let counts = ReplicaCounts { running: 2, desired: 3, completed: None };
//! let table = service_table(&[ServiceRow { service: &service, counts }]);
//! assert!(table.contains("web"));
//! assert!(table.contains("2/3"));
//! ```

#![forbid(unsafe_code)]

pub mod ctl;
pub mod daemon;
pub mod demo;
pub mod local;
pub mod table;
