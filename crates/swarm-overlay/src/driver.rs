//! The `NetworkDriver` trait and the data it exchanges with the agent.

use std::future::Future;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use swarm_api::net::Cidr;
use swarm_api::v1;

use crate::allocator::{MTU_OPTION, network_vni};
use crate::error::{DriverError, Result};
use crate::mac::MacAddr;
use crate::netns::Netns;

/// What a driver future yields.
pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One subnet of a network as a node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubnetConfig {
    /// The subnet.
    pub subnet: Cidr,
    /// Its gateway address.
    pub gateway: IpAddr,
}

/// What a node needs to know of an allocated network to build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The network id.
    pub id: String,
    /// Its VXLAN id.
    pub vni: u32,
    /// Its subnets (at least one).
    pub subnets: Vec<SubnetConfig>,
    /// MTU of its interfaces; the driver's default when unset.
    pub mtu: Option<u32>,
}

impl NetworkConfig {
    /// The configuration of an allocated network object: VNI from its
    /// driver state, subnets and gateways from its `ipam`, MTU from the
    /// driver option [`MTU_OPTION`] when present.
    pub fn from_network(network: &v1::Network) -> Result<NetworkConfig> {
        let bad = |m: String| DriverError::Invalid(format!("network {}: {m}", network.id));
        let vni = network_vni(network)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("no VXLAN id allocated".into()))?;
        let mut subnets = Vec::new();
        for c in network.ipam.iter().flat_map(|i| &i.configs) {
            let subnet: Cidr = c
                .subnet
                .parse()
                .map_err(|e| bad(format!("subnet {:?}: {e}", c.subnet)))?;
            let gateway: IpAddr = c
                .gateway
                .parse()
                .map_err(|_| bad(format!("gateway {:?} is not an address", c.gateway)))?;
            subnets.push(SubnetConfig { subnet, gateway });
        }
        let mtu = match network
            .driver_state
            .as_ref()
            .and_then(|d| d.options.get(MTU_OPTION))
        {
            Some(m) => Some(
                m.parse::<u32>()
                    .map_err(|_| bad(format!("{MTU_OPTION}={m:?} is not a number")))?,
            ),
            None => None,
        };
        let cfg = NetworkConfig {
            id: network.id.clone(),
            vni,
            subnets,
            mtu,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the configuration: a VNI of 24 bits, at least one subnet,
    /// gateways inside their subnets, an MTU between 68 and 65535.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DriverError::Invalid(format!("network {}: {m}", self.id)));
        if self.id.is_empty() {
            return bad("empty network id".into());
        }
        if self.vni == 0 || self.vni > crate::vni::MAX_VNI {
            return bad(format!("VXLAN id {} is outside 1..=16777215", self.vni));
        }
        if self.subnets.is_empty() {
            return bad("no subnet".into());
        }
        for (i, s) in self.subnets.iter().enumerate() {
            if !s.subnet.contains(&s.gateway) || s.gateway == s.subnet.network().addr() {
                return bad(format!(
                    "gateway {} is not a host of {}",
                    s.gateway, s.subnet
                ));
            }
            if self.subnets[..i]
                .iter()
                .any(|o| o.subnet.overlaps(&s.subnet))
            {
                return bad(format!("subnet {} is given twice", s.subnet));
            }
        }
        if let Some(m) = self.mtu
            && !(68..=65535).contains(&m)
        {
            return bad(format!("MTU {m} is outside 68..=65535"));
        }
        Ok(())
    }

    /// The subnet holding `ip`.
    pub fn subnet_of(&self, ip: &IpAddr) -> Option<&SubnetConfig> {
        self.subnets.iter().find(|s| s.subnet.contains(ip))
    }
}

/// A task's network namespace: a path (`/proc/<pid>/ns/net`,
/// `/run/netns/<name>`) or an open descriptor.
#[derive(Debug, Clone)]
pub enum NetnsRef {
    /// A namespace file.
    Path(PathBuf),
    /// An open namespace descriptor.
    Fd(Arc<OwnedFd>),
}

impl NetnsRef {
    /// Opens the namespace.
    pub fn open(&self) -> Result<Netns> {
        match self {
            NetnsRef::Path(p) => Ok(Netns::open(p)?),
            NetnsRef::Fd(fd) => {
                let fd = fd.try_clone().map_err(|source| DriverError::Io {
                    op: "duplicating a namespace descriptor".into(),
                    source,
                })?;
                Ok(Netns::from_fd(fd))
            }
        }
    }
}

impl From<PathBuf> for NetnsRef {
    fn from(p: PathBuf) -> Self {
        NetnsRef::Path(p)
    }
}

/// Attach a task (an endpoint) to a network.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The network.
    pub network_id: String,
    /// The endpoint: the task id (unique per network).
    pub endpoint_id: String,
    /// The task's network namespace.
    pub netns: NetnsRef,
    /// Interface name inside the task (`eth0`, `eth1`... one per network).
    pub ifname: String,
    /// The task's addresses on the network, with prefix (`10.0.0.5/24`).
    pub addresses: Vec<Cidr>,
    /// Install a default route via the network's gateway. Leave false when
    /// the task reaches the outside through the [gateway
    /// bridge](crate::gateway), which installs its own default route.
    pub default_route: bool,
}

impl JoinRequest {
    /// A request from a task's allocated attachment (`addresses` in CIDR
    /// form, as the manager's allocator writes them).
    pub fn from_attachment(
        endpoint_id: &str,
        attachment: &v1::NetworkAttachment,
        netns: NetnsRef,
        ifname: &str,
    ) -> Result<JoinRequest> {
        let network = attachment.network.as_ref().ok_or_else(|| {
            DriverError::Invalid(format!("attachment of {endpoint_id} names no network"))
        })?;
        let addresses = attachment
            .addresses
            .iter()
            .map(|a| {
                a.parse::<Cidr>()
                    .map_err(|e| DriverError::Invalid(format!("address {a:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(JoinRequest {
            network_id: network.id.clone(),
            endpoint_id: endpoint_id.to_string(),
            netns,
            ifname: ifname.to_string(),
            addresses,
            default_route: false,
        })
    }

    /// The endpoint's MAC: derived from its first IPv4 address, else its
    /// first address (see [`MacAddr::from_ip`]).
    pub fn mac(&self) -> Option<MacAddr> {
        let ip = self
            .addresses
            .iter()
            .find(|a| !a.is_ipv6())
            .or_else(|| self.addresses.first())?
            .addr();
        Some(MacAddr::from_ip(ip))
    }

    /// Checks the request against the network: a valid interface name, at
    /// least one address, each inside a subnet and not its gateway, network
    /// address or broadcast address, at most one per family.
    pub fn validate(&self, network: &NetworkConfig) -> Result<()> {
        let bad = |m: String| {
            Err(DriverError::Invalid(format!(
                "endpoint {}: {m}",
                self.endpoint_id
            )))
        };
        if self.endpoint_id.is_empty() {
            return bad("empty endpoint id".into());
        }
        if let Err(e) = check_ifname(&self.ifname) {
            return bad(e);
        }
        if self.addresses.is_empty() {
            return bad("no address".into());
        }
        for (i, a) in self.addresses.iter().enumerate() {
            let ip = a.addr();
            let Some(s) = network.subnet_of(&ip) else {
                return bad(format!(
                    "address {a} is outside the subnets of network {}",
                    network.id
                ));
            };
            if a.prefix() != s.subnet.prefix() {
                return bad(format!(
                    "address {a} does not have the prefix of {}",
                    s.subnet
                ));
            }
            if ip == s.gateway
                || ip == s.subnet.network().addr()
                || (!ip.is_ipv6() && ip == s.subnet.last())
            {
                return bad(format!(
                    "address {a} is the gateway, network or broadcast address"
                ));
            }
            if self.addresses[..i]
                .iter()
                .any(|o| o.is_ipv6() == a.is_ipv6())
            {
                return bad("more than one address of a family".into());
            }
        }
        Ok(())
    }
}

/// Checks a Linux interface name: 1 to 15 bytes, no `/`, `:` or whitespace,
/// not `.` or `..`.
pub fn check_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("interface name {name:?} must be 1 to 15 bytes"));
    }
    if name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(format!(
            "interface name {name:?} contains a forbidden character"
        ));
    }
    Ok(())
}

/// An endpoint as joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The network.
    pub network_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Interface name inside the task.
    pub ifname: String,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its addresses.
    pub addresses: Vec<Cidr>,
}

/// A remote endpoint: its overlay address and MAC, and the underlay address
/// (VTEP) of the node it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// Overlay address.
    pub ip: IpAddr,
    /// MAC (derived from the address by [`Peer::new`]).
    pub mac: MacAddr,
    /// The node's data-path (underlay) address.
    pub vtep: IpAddr,
}

impl Peer {
    /// A peer whose MAC is derived from its address.
    pub fn new(ip: IpAddr, vtep: IpAddr) -> Peer {
        Peer {
            ip,
            mac: MacAddr::from_ip(ip),
            vtep,
        }
    }

    /// Peers of one attachment address list (CIDR strings, as tasks carry
    /// them) on the node with underlay address `vtep`. For dual-stack
    /// endpoints every address maps to the MAC of the IPv4 one.
    pub fn from_addresses(addresses: &[String], vtep: IpAddr) -> Result<Vec<Peer>> {
        let ips = addresses
            .iter()
            .map(|a| {
                a.split('/')
                    .next()
                    .unwrap_or_default()
                    .parse::<IpAddr>()
                    .map_err(|_| DriverError::Invalid(format!("peer address {a:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()) else {
            return Ok(Vec::new());
        };
        let mac = MacAddr::from_ip(*first);
        Ok(ips.into_iter().map(|ip| Peer { ip, mac, vtep }).collect())
    }
}

/// A network as a driver holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkState {
    /// Its configuration.
    pub config: NetworkConfig,
    /// Local endpoints, by endpoint id order.
    pub endpoints: Vec<EndpointInfo>,
    /// Remote peers, by address order.
    pub peers: Vec<Peer>,
}

/// Everything a driver holds on this node (after a restart: what it found).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverState {
    /// Networks by id order.
    pub networks: Vec<NetworkState>,
}

/// A network driver: builds networks, endpoints and peers on one node.
///
/// Every method is idempotent where that makes sense for an agent that
/// retries: creating an existing network with the same configuration,
/// joining an endpoint again with the same request, adding a known peer,
/// leaving an unknown endpoint or removing an unknown peer all succeed
/// without change. A failed call leaves nothing half-created.
///
/// [`crate::conformance`] checks an implementation against this contract.
pub trait NetworkDriver: Send + Sync {
    /// The driver's name (`overlay`, `null`).
    fn name(&self) -> &'static str;

    /// Creates a network on this node (or adopts the one already there with
    /// the same configuration). Fails with [`DriverError::VniInUse`] when
    /// another network has the VNI, and [`DriverError::NetworkConflict`]
    /// when the network exists, has endpoints and a different configuration.
    fn create_network<'a>(&'a self, network: &'a NetworkConfig) -> DriverFuture<'a, ()>;

    /// Deletes a network and everything of it on this node. Fails with
    /// [`DriverError::NetworkInUse`] while endpoints are joined; deleting an
    /// unknown network succeeds.
    fn delete_network<'a>(&'a self, network_id: &'a str) -> DriverFuture<'a, ()>;

    /// Attaches an endpoint: an interface in the task's namespace with the
    /// task's addresses.
    fn join<'a>(&'a self, request: &'a JoinRequest) -> DriverFuture<'a, EndpointInfo>;

    /// Detaches an endpoint and removes its interface.
    fn leave<'a>(&'a self, network_id: &'a str, endpoint_id: &'a str) -> DriverFuture<'a, ()>;

    /// Makes a remote endpoint reachable. A peer on this node's own VTEP is
    /// ignored; a known address with a new MAC or VTEP is updated.
    fn add_peer<'a>(&'a self, network_id: &'a str, peer: &'a Peer) -> DriverFuture<'a, ()>;

    /// Makes a remote endpoint unreachable.
    fn remove_peer<'a>(&'a self, network_id: &'a str, peer: &'a Peer) -> DriverFuture<'a, ()>;

    /// What the driver holds.
    fn state(&self) -> DriverFuture<'_, DriverState>;
}
