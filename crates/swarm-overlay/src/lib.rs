//! Overlay networking for swarm-rs: address management, VXLAN ids, and a
//! VXLAN data plane built over netlink, the way Docker's overlay driver
//! builds it.
//!
//! # The pieces
//!
//! - **Manager side, pure:** [`ipam::Ipam`] carves subnets from address
//!   pools (default `10.0.0.0/8` in `/24`s) and hands out addresses per
//!   endpoint and per service VIP; [`vni::VniAllocator`] hands out VXLAN ids
//!   from 4096. [`allocator::NetworkAllocator`] drives both from the API
//!   objects (`swarm_api::v1::Network`, `Task`, `Service`, `Node`), and is
//!   rebuilt by a new leader from the objects in the store
//!   ([`allocator::NetworkAllocator::rebuild`]) or from a persisted
//!   [`allocator::AllocatorState`], so no address is handed out twice.
//! - **Node side, kernel:** the [`driver::NetworkDriver`] trait (create and
//!   delete networks, join and leave endpoints, add and remove remote
//!   peers), implemented by [`vxlan::VxlanDriver`] (namespaces, bridges,
//!   VXLAN devices, veths, static FDB and neighbour entries, all over
//!   rtnetlink) and [`noop::NoopDriver`] (process-only workers);
//!   [`gateway::GatewayBridge`], the node's `docker_gwbridge` (outbound NAT
//!   and host-mode published ports, via nftables); [`peers::PeerTable`],
//!   which turns the manager's picture of every endpoint into the minimal
//!   add/remove calls; [`netns`], the namespace helpers.
//! - [`conformance`]: the suite any `NetworkDriver` must pass.
//!
//! # The manager: allocating
//!
//! ```
//! use swarm_api::v1;
//! use swarm_overlay::allocator::{NetworkAllocator, network_vni};
//! use swarm_overlay::ipam::IpamConfig;
//!
//! let mut alloc = NetworkAllocator::new(IpamConfig::default());
//! let mut net = v1::Network { id: "net1".into(), spec: Some(v1::NetworkSpec::default()), ..Default::default() };
//! alloc.allocate_network(&mut net).unwrap();
//! assert_eq!(network_vni(&net).unwrap(), Some(4096));
//! assert_eq!(net.ipam.as_ref().unwrap().configs[0].subnet, "10.0.0.0/24");
//!
//! let mut task = v1::Task {
//!     id: "task1".into(),
//!     networks: vec![v1::NetworkAttachment { network: Some(net.clone()), ..Default::default() }],
//!     ..Default::default()
//! };
//! alloc.allocate_task(&mut task).unwrap();
//! assert_eq!(task.networks[0].addresses, vec!["10.0.0.2/24".to_string()]);
//!
//! // A new leader rebuilds from the stored objects and carries on.
//! let (mut rebuilt, conflicts) =
//!     NetworkAllocator::rebuild(IpamConfig::default(), &[net.clone()], &[], &[task.clone()], &[]);
//! assert!(conflicts.is_empty());
//! let vip = rebuilt.allocate_vip("net1", "service1").unwrap();
//! assert_eq!(vip, "10.0.0.3/24");
//! ```
//!
//! # The agent: building the data plane
//!
//! One [`vxlan::VxlanDriver`] per node, started with the node's data-path
//! (underlay) address; [`vxlan::VxlanDriver::new`] also recovers what a
//! previous run left. For each task on an overlay network:
//!
//! 1. [`driver::NetworkConfig::from_network`] on the allocated network, then
//!    `create_network` (idempotent: call it for every task).
//! 2. [`driver::JoinRequest::from_attachment`] with the task's network
//!    namespace ([`driver::NetnsRef`]: a path such as `/proc/<pid>/ns/net`,
//!    or a descriptor) and an interface name (`eth0`, `eth1`...), then
//!    `join`. The endpoint's MAC is derived from its IP
//!    ([`mac::MacAddr::from_ip`]), so peers need no MAC from the manager.
//! 3. If the network is not `internal`, [`gateway::GatewayBridge::attach`]
//!    for outbound access and host-mode ports (it sets the task's default
//!    route; leave `JoinRequest::default_route` false then).
//! 4. Whenever the assignments change, [`peers::PeerTable::sync`] with every
//!    endpoint of the network as [`driver::Peer`]s (overlay IP and the
//!    node's underlay address; [`driver::Peer::from_addresses`] reads an
//!    attachment's CIDR strings). Endpoints of this node are skipped; only
//!    the difference reaches the kernel.
//! 5. When the task ends: `leave`, [`gateway::GatewayBridge::detach`], and
//!    `delete_network` once no endpoint is left.
//!
//! After an agent restart, [`driver::NetworkDriver::state`] tells what was
//! recovered; re-declaring the wanted networks, endpoints and peers is a
//! no-op for what is already right, and `leave`/`delete_network` remove the
//! rest.
//!
//! Another component may put its own nftables tables and sockets in the
//! same task namespaces (the load balancer and the DNS resolver do): this
//! crate only touches the interfaces it creates and its own nftables table.

#![deny(unsafe_code)]

pub mod allocator;
pub mod conformance;
pub mod driver;
pub mod error;
pub mod gateway;
pub mod ipam;
pub mod mac;
pub mod netns;
pub(crate) mod nl;
pub mod noop;
pub mod peers;
mod serde_cidr;
pub mod vni;
pub mod vxlan;
