//! What a load balancer is asked to program: services, their ports and
//! their backends. Plain data, validated before any kernel is touched.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::error::{LbError, Result};

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (kernel backends only).
    Sctp,
}

impl Protocol {
    /// The IP protocol number (6, 17, 132).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// From the API enum.
    pub fn from_api(p: swarm_api::v1::Protocol) -> Self {
        match p {
            swarm_api::v1::Protocol::Tcp => Protocol::Tcp,
            swarm_api::v1::Protocol::Udp => Protocol::Udp,
            swarm_api::v1::Protocol::Sctp => Protocol::Sctp,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// How a published port reaches the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PublishMode {
    /// Routing mesh: the port is open on every node and balanced over all
    /// tasks, wherever they run. Connections are source-NATed to the node's
    /// address so replies come back through it: the task sees the node, not
    /// the client (the trade-off Docker makes too).
    Ingress,
    /// Routing mesh restricted to the tasks on this node, with the client's
    /// source address preserved (no source NAT). The caller passes only
    /// local tasks as backends; nodes without a task should not publish.
    /// This is Kubernetes' `externalTrafficPolicy: Local`.
    IngressLocal,
    /// Host-mode publishing: the port is open only on nodes that run a
    /// task and leads straight to it; the client's address is preserved.
    Host,
}

impl PublishMode {
    /// True when connections through this port are source-NATed.
    pub fn masquerades(self) -> bool {
        matches!(self, PublishMode::Ingress)
    }
}

/// A port published on the node's own addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Published {
    /// Port on the node.
    pub port: u16,
    /// Mesh or host publishing.
    pub mode: PublishMode,
}

/// One port of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSpec {
    /// Protocol.
    pub protocol: Protocol,
    /// Port the tasks listen on. The VIP forwards this port unchanged.
    pub target_port: u16,
    /// Where the port is published on the node, if it is.
    pub published: Option<Published>,
}

/// Id of a service as the load balancer knows it (the swarm service id).
pub type ServiceId = String;

/// A service to balance: its VIP (if any) and its ports.
///
/// With the kernel backends a VIP forwards every TCP/UDP port to the same
/// port on a backend (Docker's behaviour: a client reaches any port the
/// task listens on through the VIP); `ports` then only matter for
/// publishing. The userspace proxy listens on the listed ports only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceSpec {
    /// Service id, unique within one load balancer.
    pub id: ServiceId,
    /// The virtual IP; `None` for a service reached only through
    /// published ports (e.g. a DNS round-robin service that publishes).
    pub vip: Option<IpAddr>,
    /// Ports, with their publishing.
    pub ports: Vec<PortSpec>,
}

impl ServiceSpec {
    /// A VIP service with no published port.
    pub fn vip(id: impl Into<String>, vip: IpAddr) -> Self {
        ServiceSpec {
            id: id.into(),
            vip: Some(vip),
            ports: Vec::new(),
        }
    }

    /// Checks the spec: a non-empty id of printable ASCII, non-zero ports,
    /// no published port used twice.
    pub fn validate(&self) -> Result<()> {
        validate_id(&self.id)?;
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.ports {
            if p.target_port == 0 {
                return Err(LbError::invalid("port", "target port 0"));
            }
            if let Some(publ) = p.published {
                if publ.port == 0 {
                    return Err(LbError::invalid("port", "published port 0"));
                }
                if !seen.insert((p.protocol, publ.port)) {
                    return Err(LbError::invalid(
                        "port",
                        format!("{}/{} published twice", publ.port, p.protocol),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Validates a service id: 1..=128 characters of `[A-Za-z0-9_.-]`.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 {
        return Err(LbError::invalid(
            "service id",
            "must be 1 to 128 characters",
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(LbError::invalid(
            "service id",
            format!("{id:?} has characters outside [A-Za-z0-9_.-]"),
        ));
    }
    Ok(())
}

/// A backend (task) of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// The task's address on the service's network.
    pub addr: IpAddr,
    /// Relative weight; 0 means draining: established connections go on,
    /// no new connection is sent to it.
    pub weight: u32,
}

impl Backend {
    /// A backend with weight 1.
    pub fn new(addr: IpAddr) -> Self {
        Backend { addr, weight: 1 }
    }
}

/// A service and its backends, as programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    /// The service.
    pub spec: ServiceSpec,
    /// Backends by address.
    pub backends: BTreeMap<IpAddr, Backend>,
}

impl ServiceState {
    /// A service with no backend yet.
    pub fn new(spec: ServiceSpec) -> Self {
        ServiceState {
            spec,
            backends: BTreeMap::new(),
        }
    }

    /// Adds backends (builder style).
    pub fn with_backends(mut self, backends: impl IntoIterator<Item = Backend>) -> Self {
        for b in backends {
            self.backends.insert(b.addr, b);
        }
        self
    }

    /// Backends that take new connections (weight > 0).
    pub fn active(&self) -> impl Iterator<Item = &Backend> {
        self.backends.values().filter(|b| b.weight > 0)
    }
}
