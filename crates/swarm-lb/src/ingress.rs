//! The ingress routing mesh and host-mode publishing, and the glue from
//! swarm-api services to [`ServiceSpec`]s.
//!
//! # How a published port is served
//!
//! Every node runs one [`crate::nft::NftBalancer`] in the namespace that owns its
//! public addresses (the root namespace on a real node) and gives it the
//! spec from [`ingress_spec`] for every service with ingress-published
//! ports, with the service's tasks' addresses **on the ingress network**
//! as backends, on every node, whether or not a task runs there. A packet
//! to `<any node address>:<published port>` is DNATed in prerouting to a
//! backend's `address:target port` picked round-robin, and leaves through
//! the ingress overlay to whichever node runs that task.
//!
//! # Source addresses: the trade-off
//!
//! The task's reply must come back through the node that did the DNAT, or
//! the client would see an answer from an address it never talked to. The
//! backend's route back to an arbitrary client goes through its own node,
//! not the one the client used, so [`PublishMode::Ingress`] masquerades:
//! the task sees the ingress address of the node that took the
//! connection, not the client. This is what Docker does, and its known
//! cost (logs and allow-lists see the mesh, not clients).
//!
//! Where the design allows, the address is kept:
//! - [`PublishMode::Host`] (host-mode publishing, from [`host_spec`]): the
//!   port only on nodes running a task, DNAT straight to the local task,
//!   no source NAT (the task's default route is its own node).
//! - [`PublishMode::IngressLocal`]: mesh ports served only by the node's
//!   own tasks, unmasqueraded (Kubernetes' `externalTrafficPolicy:
//!   Local`); the caller passes only local tasks and should not publish on
//!   nodes without one. Clients (or an external balancer) must then target
//!   nodes that run a task.
//!
//! Published ports are picked by the manager from 30000–32767 when the
//! user gives none: [`PortAllocator`] implements that choice.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use swarm_api::v1;

use crate::error::{LbError, Result};
use crate::model::{PortSpec, Protocol, PublishMode, Published, ServiceSpec};

/// Hands out published ports from a range (default 30000–32767, as
/// SwarmKit), one set per protocol.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: RangeInclusive<u16>,
    used: BTreeSet<(Protocol, u16)>,
}

impl Default for PortAllocator {
    fn default() -> Self {
        let r = swarm_api::defaults::INGRESS_PORT_RANGE;
        let lo = u16::try_from(*r.start()).unwrap_or(30000);
        let hi = u16::try_from(*r.end()).unwrap_or(32767);
        Self::new(lo..=hi)
    }
}

impl PortAllocator {
    /// An allocator over `range`.
    pub fn new(range: RangeInclusive<u16>) -> Self {
        PortAllocator {
            range,
            used: BTreeSet::new(),
        }
    }

    /// Reserves a port the user asked for (any port, in range or not).
    pub fn reserve(&mut self, protocol: Protocol, port: u16) -> Result<()> {
        if port == 0 {
            return Err(LbError::invalid("published port", "0 is not a port"));
        }
        if !self.used.insert((protocol, port)) {
            return Err(LbError::invalid(
                "published port",
                format!("{port}/{protocol} is already in use"),
            ));
        }
        Ok(())
    }

    /// The lowest free port of the range.
    pub fn allocate(&mut self, protocol: Protocol) -> Result<u16> {
        let port = self
            .range
            .clone()
            .find(|p| !self.used.contains(&(protocol, *p)))
            .ok_or_else(|| {
                LbError::invalid(
                    "published port",
                    format!("no free {protocol} port left in the range"),
                )
            })?;
        self.used.insert((protocol, port));
        Ok(port)
    }

    /// Frees a port.
    pub fn release(&mut self, protocol: Protocol, port: u16) {
        self.used.remove(&(protocol, port));
    }
}

fn port_u16(p: u32, what: &'static str) -> Result<u16> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| LbError::invalid(what, format!("{p} is not a port")))
}

/// The service's VIP on a network, from its allocated endpoint.
pub fn vip_on(service: &v1::Service, network_id: &str) -> Result<Option<IpAddr>> {
    let Some(ep) = service.endpoint.as_ref() else {
        return Ok(None);
    };
    for v in &ep.virtual_ips {
        if v.network_id == network_id {
            let addr = v.addr.split('/').next().unwrap_or_default();
            let ip = addr
                .parse()
                .map_err(|_| LbError::invalid("vip", format!("{:?} is not an address", v.addr)))?;
            return Ok(Some(ip));
        }
    }
    Ok(None)
}

fn ports(
    service: &v1::Service,
    keep: impl Fn(&v1::PortConfig) -> Option<Option<Published>>,
) -> Result<Vec<PortSpec>> {
    let mut out = Vec::new();
    for p in service.endpoint.iter().flat_map(|e| e.ports.iter()) {
        let Some(published) = keep(p) else { continue };
        out.push(PortSpec {
            protocol: Protocol::from_api(p.protocol()),
            target_port: port_u16(p.target_port, "target port")?,
            published,
        });
    }
    Ok(out)
}

/// The spec that programs a service's VIP on one of its networks inside a
/// task's namespace (backends: the tasks' addresses on that network).
/// `None` when the service has no VIP there (DNS round-robin mode).
pub fn vip_spec(service: &v1::Service, network_id: &str) -> Result<Option<ServiceSpec>> {
    let Some(vip) = vip_on(service, network_id)? else {
        return Ok(None);
    };
    Ok(Some(ServiceSpec {
        id: service.id.clone(),
        vip: Some(vip),
        ports: ports(service, |_| Some(None))?,
    }))
}

/// The spec that publishes a service's ingress ports on a node (backends:
/// the tasks' addresses on the ingress network). `None` without ingress
/// ports. `mode` is [`PublishMode::Ingress`] (mesh, masqueraded) or
/// [`PublishMode::IngressLocal`].
pub fn ingress_spec(service: &v1::Service, mode: PublishMode) -> Result<Option<ServiceSpec>> {
    let ports = ports(service, |p| {
        (p.publish_mode() == v1::PublishMode::Ingress && p.published_port != 0).then(|| {
            u16::try_from(p.published_port)
                .ok()
                .map(|port| Published { port, mode })
        })
    })?;
    if ports.iter().all(|p| p.published.is_none()) {
        return Ok(None);
    }
    Ok(Some(ServiceSpec {
        id: format!("{}-ingress", service.id),
        vip: None,
        ports,
    }))
}

/// The spec that publishes a service's host-mode ports on a node that runs
/// its task (backends: the local tasks). `None` without host-mode ports.
pub fn host_spec(service: &v1::Service) -> Result<Option<ServiceSpec>> {
    let ports = ports(service, |p| {
        (p.publish_mode() == v1::PublishMode::Host && p.published_port != 0).then(|| {
            u16::try_from(p.published_port).ok().map(|port| Published {
                port,
                mode: PublishMode::Host,
            })
        })
    })?;
    if ports.iter().all(|p| p.published.is_none()) {
        return Ok(None);
    }
    Ok(Some(ServiceSpec {
        id: format!("{}-host", service.id),
        vip: None,
        ports,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> v1::Service {
        v1::Service {
            id: "svc1".into(),
            endpoint: Some(v1::Endpoint {
                spec: None,
                ports: vec![
                    v1::PortConfig {
                        name: String::new(),
                        protocol: v1::Protocol::Tcp.into(),
                        target_port: 80,
                        published_port: 30001,
                        publish_mode: v1::PublishMode::Ingress.into(),
                    },
                    v1::PortConfig {
                        name: String::new(),
                        protocol: v1::Protocol::Udp.into(),
                        target_port: 53,
                        published_port: 5353,
                        publish_mode: v1::PublishMode::Host.into(),
                    },
                ],
                virtual_ips: vec![v1::VirtualIp {
                    network_id: "ingress".into(),
                    addr: "10.255.0.5/16".into(),
                }],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn specs_from_an_api_service() {
        let s = service();
        let vip = vip_spec(&s, "ingress").unwrap().unwrap();
        assert_eq!(vip.vip, Some(IpAddr::from([10, 255, 0, 5])));
        assert_eq!(vip.ports.len(), 2);
        assert!(vip_spec(&s, "other").unwrap().is_none());
        let ing = ingress_spec(&s, PublishMode::Ingress).unwrap().unwrap();
        assert_eq!(ing.ports.len(), 1);
        assert_eq!(ing.ports[0].published.unwrap().port, 30001);
        let host = host_spec(&s).unwrap().unwrap();
        assert_eq!(host.ports[0].protocol, Protocol::Udp);
        assert_eq!(host.ports[0].published.unwrap().mode, PublishMode::Host);
    }

    #[test]
    fn allocator_fills_the_range_then_refuses() {
        let mut a = PortAllocator::new(30000..=30002);
        a.reserve(Protocol::Tcp, 30001).unwrap();
        assert!(a.reserve(Protocol::Tcp, 30001).is_err());
        assert_eq!(a.allocate(Protocol::Tcp).unwrap(), 30000);
        assert_eq!(a.allocate(Protocol::Tcp).unwrap(), 30002);
        assert!(a.allocate(Protocol::Tcp).is_err());
        assert_eq!(a.allocate(Protocol::Udp).unwrap(), 30000);
        a.release(Protocol::Tcp, 30001);
        assert_eq!(a.allocate(Protocol::Tcp).unwrap(), 30001);
        assert_eq!(
            PortAllocator::default().allocate(Protocol::Tcp).unwrap(),
            30000
        );
    }
}
