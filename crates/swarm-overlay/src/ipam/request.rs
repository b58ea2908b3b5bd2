//! What a network asks of IPAM for one subnet.

use std::collections::BTreeMap;
use std::net::IpAddr;

use swarm_api::net::Cidr;
use swarm_api::v1;

use super::bits::{bounds, covers, from_bits};
use super::{Family, IpamError, SubnetState};

/// One subnet a network asks for: a family to carve from the pools, or an
/// explicit subnet, with optional range, gateway and reserved addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetRequest {
    /// Family to carve from the pools when no subnet is given (IPv4 when
    /// unset).
    pub family: Option<Family>,
    /// An explicit subnet.
    pub subnet: Option<Cidr>,
    /// Sub-range addresses are picked from.
    pub range: Option<Cidr>,
    /// The gateway (first host of the subnet when unset).
    pub gateway: Option<IpAddr>,
    /// Addresses never handed out, by name.
    pub reserved: BTreeMap<String, IpAddr>,
    /// Whether a restored subnet came from a pool (worked out when unset).
    pub from_pool: Option<bool>,
}

impl SubnetRequest {
    /// A subnet of `family` from the pools.
    pub fn from_pool(family: Family) -> SubnetRequest {
        SubnetRequest {
            family: Some(family),
            ..SubnetRequest::default()
        }
    }

    /// An explicit subnet.
    pub fn explicit(subnet: Cidr) -> SubnetRequest {
        SubnetRequest {
            family: Some(Family::of_cidr(&subnet)),
            subnet: Some(subnet),
            ..SubnetRequest::default()
        }
    }

    /// Sets the gateway.
    pub fn with_gateway(mut self, gateway: IpAddr) -> SubnetRequest {
        self.gateway = Some(gateway);
        self
    }

    /// Sets the allocation range.
    pub fn with_range(mut self, range: Cidr) -> SubnetRequest {
        self.range = Some(range);
        self
    }

    /// Adds a reserved address.
    pub fn with_reserved(mut self, name: impl Into<String>, addr: IpAddr) -> SubnetRequest {
        self.reserved.insert(name.into(), addr);
        self
    }

    /// Parses one `IpamConfig` of a network spec (or of an allocated
    /// network, to restore it). Empty strings mean "unset".
    pub fn from_config(c: &v1::IpamConfig) -> Result<SubnetRequest, IpamError> {
        let cidr = |field: &str, text: &str| -> Result<Option<Cidr>, IpamError> {
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<Cidr>()
                .map(Some)
                .map_err(|e| IpamError::BadInput {
                    field: field.into(),
                    value: text.into(),
                    reason: e.to_string(),
                })
        };
        let ip = |field: &str, text: &str| -> Result<IpAddr, IpamError> {
            text.parse::<IpAddr>().map_err(|e| IpamError::BadInput {
                field: field.into(),
                value: text.into(),
                reason: e.to_string(),
            })
        };
        let subnet = cidr("subnet", &c.subnet)?;
        let family = match (c.family(), &subnet) {
            (v1::AddressFamily::Ipv4, _) => Some(Family::V4),
            (v1::AddressFamily::Ipv6, _) => Some(Family::V6),
            (v1::AddressFamily::Unknown, Some(s)) => Some(Family::of_cidr(s)),
            (v1::AddressFamily::Unknown, None) => None,
        };
        let gateway = if c.gateway.is_empty() {
            None
        } else {
            Some(ip("gateway", &c.gateway)?)
        };
        let mut reserved = BTreeMap::new();
        for (name, addr) in &c.reserved {
            reserved.insert(name.clone(), ip(&format!("reserved[{name}]"), addr)?);
        }
        Ok(SubnetRequest {
            family,
            subnet,
            range: cidr("range", &c.range)?,
            gateway,
            reserved,
            from_pool: None,
        })
    }

    /// The request that reproduces an allocated subnet.
    pub(crate) fn from_state(s: &SubnetState) -> SubnetRequest {
        SubnetRequest {
            family: Some(s.family()),
            subnet: Some(s.subnet),
            range: s.range,
            gateway: Some(s.gateway),
            reserved: s.reserved.clone(),
            from_pool: Some(s.from_pool),
        }
    }

    /// The subnet state once `subnet` is chosen, checked against the rest of
    /// the request.
    pub(crate) fn build(&self, subnet: Cidr, from_pool: bool) -> Result<SubnetState, IpamError> {
        let family = Family::of_cidr(&subnet);
        if let Some(f) = self.family
            && f != family
        {
            return Err(IpamError::BadInput {
                field: "subnet".into(),
                value: subnet.to_string(),
                reason: format!("is not {f}"),
            });
        }
        if let Some(range) = self.range
            && (!covers(&subnet, &range) || !range.is_canonical())
        {
            return Err(IpamError::BadRange { range, subnet });
        }
        let (lo, hi) = bounds(&subnet);
        let gateway = match self.gateway {
            Some(gw) => {
                let bad = |reason| IpamError::BadGateway {
                    gateway: gw,
                    subnet,
                    reason,
                };
                if !subnet.contains(&gw) {
                    return Err(bad("outside the subnet"));
                }
                if gw == subnet.network().addr() {
                    return Err(bad("it is the network address"));
                }
                if family == Family::V4 && gw == subnet.last() {
                    return Err(bad("it is the broadcast address"));
                }
                gw
            }
            None => from_bits(family, lo + 1),
        };
        debug_assert!(hi > lo + 1);
        for (name, addr) in &self.reserved {
            if !subnet.contains(addr) {
                return Err(IpamError::BadInput {
                    field: format!("reserved[{name}]"),
                    value: addr.to_string(),
                    reason: format!("is outside {subnet}"),
                });
            }
        }
        Ok(SubnetState {
            subnet,
            range: self.range,
            gateway,
            from_pool,
            reserved: self.reserved.clone(),
            addresses: BTreeMap::new(),
            last: None,
        })
    }
}
