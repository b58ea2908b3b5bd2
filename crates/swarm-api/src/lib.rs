//! The swarm-rs object model and wire protocol.
//!
//! Every object the cluster stores (nodes, services, tasks, networks, the
//! cluster, secrets and configs), every spec a user writes, and every gRPC
//! service the managers and agents speak is defined once, in the `.proto`
//! files under `proto/`, and compiled here with prost and tonic. The same
//! types are used on the wire, in the raft log and snapshots, and (through
//! serde) in the JSON that `swarmctl` prints and reads.
//!
//! Beside the generated types this crate holds what every other crate needs
//! to agree on: [`id`] generation (25-character base-36 ids), the ordering of
//! [`v1::TaskState`] ([`task_state`]), conversions between the protocol's
//! [`v1::Timestamp`]/[`v1::Duration`] and `std` ([`time`]), the SwarmKit
//! [`defaults`], and [`validate`]: spec validation with errors that name the
//! field that is wrong and say why.
//!
//! # Example
//!
//! ```
//! use swarm_api::v1::{Annotations, ContainerSpec, ReplicatedService, ServiceSpec, TaskSpec};
//! use swarm_api::v1::service_spec::Mode;
//! use swarm_api::validate::validate_service_spec;
//!
//! let spec = ServiceSpec {
//!     annotations: Some(Annotations { name: "web".into(), ..Default::default() }),
//!     task: Some(TaskSpec {
//!         container: Some(ContainerSpec {
//!             command: vec!["/bin/sleep".into(), "3600".into()],
//!             ..Default::default()
//!         }),
//!         ..Default::default()
//!     }),
//!     mode: Some(Mode::Replicated(ReplicatedService { replicas: 3 })),
//!     ..Default::default()
//! };
//! validate_service_spec(&spec).expect("a valid spec");
//!
//! // Specs read and print as JSON with readable enum names.
//! let json = serde_json::to_string(&spec).unwrap();
//! let back: ServiceSpec = serde_json::from_str(&json).unwrap();
//! assert_eq!(back, spec);
//!
//! // Ids are 25 characters of base 36.
//! let id = swarm_api::id::new_id();
//! assert_eq!(id.len(), 25);
//! ```

#![forbid(unsafe_code)]

pub mod defaults;
mod enum_name;
pub mod id;
pub mod net;
mod redact;
mod serde_b64;
mod serde_enum;
pub mod task_state;
pub mod time;
pub mod validate;

pub use enum_name::{EnumName, ParseEnumError};

/// Generated protobuf types and gRPC clients/servers of package `swarm.v1`.
///
/// Documentation comes from the `.proto` files. Enum-typed fields are `i32`
/// in prost; use the generated getters (`task.desired_state()`) and setters,
/// and [`EnumName`] for their names.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    reason = "generated code: docs come from the .proto comments where prost carries them"
)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/swarm.v1.rs"));
}

/// The standard gRPC health-checking protocol (`grpc.health.v1`).
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    reason = "generated code"
)]
pub mod health {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

include!(concat!(env!("OUT_DIR"), "/enum_names.rs"));
