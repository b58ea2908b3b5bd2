//! The per-node gateway bridge (Docker's `docker_gwbridge`): tasks on
//! overlay networks reach the outside through it, NATed behind the node's
//! address, and host-mode published ports reach tasks through it.
//!
//! The bridge is created when the first task attaches and removed, with its
//! nftables table, when the last one detaches. Each task gets a veth pair
//! (inner end made directly in its namespace) with an address from the
//! bridge's subnet (172.18.0.0/16 by default) and its default route via the
//! bridge. The nftables table (its own, `swarm_gwbridge` by default; other
//! tables are never touched) masquerades the subnet, stops tasks from
//! talking to each other through the bridge (like Docker's gwbridge), and
//! DNATs each published port to its task. DNAT rules carry a comment naming
//! their endpoint, and veths an alias, so a restarted agent recovers
//! everything with [`GatewayBridge::new`].
//!
//! Forwarding is enabled in the host namespace when the bridge is created.
//! Another table with a `drop` policy on the forward hook (Docker's
//! iptables rules, a host firewall) still applies: allow the bridge there.

mod nft;
mod ops;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rtnetlink::Handle;
use swarm_api::net::Cidr;

use crate::driver::{NetnsRef, check_ifname};
use crate::error::{DriverError, Result};
use crate::ipam::Ipam;
use crate::mac::MacAddr;
use crate::netns::Netns;

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A host-mode published port: `published` on the node to `target` in the
/// task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortMapping {
    /// Protocol.
    pub protocol: Protocol,
    /// Port on the node.
    pub published: u16,
    /// Port in the task.
    pub target: u16,
}

impl PortMapping {
    /// The host-mode ports of a task's endpoint spec (ingress-mode ports and
    /// ports without a published number are left out).
    pub fn host_ports(ports: &[swarm_api::v1::PortConfig]) -> Vec<PortMapping> {
        ports
            .iter()
            .filter(|p| p.publish_mode() == swarm_api::v1::PublishMode::Host)
            .filter_map(|p| {
                let protocol = match p.protocol() {
                    swarm_api::v1::Protocol::Tcp => Protocol::Tcp,
                    swarm_api::v1::Protocol::Udp => Protocol::Udp,
                    swarm_api::v1::Protocol::Sctp => Protocol::Sctp,
                };
                Some(PortMapping {
                    protocol,
                    published: u16::try_from(p.published_port).ok().filter(|p| *p != 0)?,
                    target: u16::try_from(p.target_port).ok().filter(|p| *p != 0)?,
                })
            })
            .collect()
    }
}

/// Configuration of the gateway bridge. Build it with
/// [`GatewayConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    bridge: String,
    subnet: Cidr,
    mtu: u32,
    host_netns: Option<PathBuf>,
    table: String,
    icc: bool,
}

impl GatewayConfig {
    /// A builder with the defaults: bridge `swarm_gwbridge` on
    /// 172.18.0.0/16 (gateway 172.18.0.1), MTU 1500, nftables table
    /// `swarm_gwbridge`, no traffic between tasks over the bridge.
    pub fn builder() -> GatewayConfigBuilder {
        #[allow(clippy::expect_used, reason = "a constant that parses")]
        let subnet = "172.18.0.0/16".parse().expect("a valid network");
        GatewayConfigBuilder {
            cfg: GatewayConfig {
                bridge: "swarm_gwbridge".into(),
                subnet,
                mtu: 1500,
                host_netns: None,
                table: "swarm_gwbridge".into(),
                icc: false,
            },
        }
    }

    /// The bridge name.
    pub fn bridge_name(&self) -> &str {
        &self.bridge
    }

    /// The subnet.
    pub fn subnet(&self) -> Cidr {
        self.subnet
    }

    /// The bridge's address (the tasks' default gateway): the subnet's
    /// first host.
    pub fn gateway(&self) -> IpAddr {
        crate::ipam::first_host(&self.subnet)
    }

    /// The nftables table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The namespace playing the host (`None`: the caller's own).
    pub fn host_netns(&self) -> Option<&Path> {
        self.host_netns.as_deref()
    }
}

/// Builder of [`GatewayConfig`].
#[derive(Debug, Clone)]
pub struct GatewayConfigBuilder {
    cfg: GatewayConfig,
}

impl GatewayConfigBuilder {
    /// Bridge name (at most 15 bytes).
    pub fn bridge_name(mut self, name: impl Into<String>) -> Self {
        self.cfg.bridge = name.into();
        self
    }

    /// Subnet of the bridge (canonical, room for at least two tasks).
    pub fn subnet(mut self, subnet: Cidr) -> Self {
        self.cfg.subnet = subnet;
        self
    }

    /// MTU of the bridge and the task interfaces.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.cfg.mtu = mtu;
        self
    }

    /// Run as if the namespace at `path` were the host (tests).
    pub fn host_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.cfg.host_netns = Some(path.into());
        self
    }

    /// Name of the nftables table.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.cfg.table = name.into();
        self
    }

    /// Let tasks talk to each other over the bridge (off by default).
    pub fn icc(mut self, on: bool) -> Self {
        self.cfg.icc = on;
        self
    }

    /// Checks and returns the configuration.
    pub fn build(self) -> Result<GatewayConfig> {
        let c = self.cfg;
        let bad = |m: String| Err(DriverError::Invalid(format!("gateway bridge: {m}")));
        if let Err(e) = check_ifname(&c.bridge) {
            return bad(e);
        }
        if !c.subnet.is_canonical() {
            return bad(format!("subnet {} has host bits set", c.subnet));
        }
        if c.subnet.prefix() > if c.subnet.is_ipv6() { 126 } else { 29 } {
            return bad(format!("subnet {} is too small", c.subnet));
        }
        if !(576..=65535).contains(&c.mtu) {
            return bad(format!("MTU {} is outside 576..=65535", c.mtu));
        }
        let ok = !c.table.is_empty()
            && c.table.len() <= 64
            && c.table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return bad(format!(
                "nftables table name {:?} must be 1 to 64 of [A-Za-z0-9_-]",
                c.table
            ));
        }
        Ok(c)
    }
}

/// Attach a task to the gateway bridge.
#[derive(Debug, Clone)]
pub struct GatewayAttach {
    /// The endpoint (task id).
    pub endpoint_id: String,
    /// The task's namespace.
    pub netns: NetnsRef,
    /// Interface name in the task (Docker uses the one after its overlay
    /// interfaces, e.g. `eth1`).
    pub ifname: String,
    /// Host-mode published ports of the task.
    pub ports: Vec<PortMapping>,
}

/// A task as attached to the gateway bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEndpoint {
    /// The endpoint.
    pub endpoint_id: String,
    /// Interface name in the task.
    pub ifname: String,
    /// Its address on the bridge's subnet.
    pub address: Cidr,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its default gateway (the bridge).
    pub gateway: IpAddr,
    /// Its published ports.
    pub ports: Vec<PortMapping>,
}

#[derive(Debug)]
struct GwState {
    bridge: Option<u32>,
    ipam: Ipam,
    endpoints: BTreeMap<String, (GatewayEndpoint, String)>,
}

/// The gateway bridge of a node. See the [module docs](self).
#[derive(Debug)]
pub struct GatewayBridge {
    cfg: GatewayConfig,
    host: Handle,
    host_ns: Option<Netns>,
    st: tokio::sync::Mutex<GwState>,
}

/// Network id of the bridge's subnet in its private IPAM.
const GW_NET: &str = "gwbridge";
