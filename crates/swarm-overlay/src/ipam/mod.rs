//! IP address management: subnets per network, addresses per endpoint and
//! per service VIP, carved from address pools.
//!
//! [`Ipam`] is a pure, deterministic allocator: no I/O, no clock. Its whole
//! state is plain data ([`IpamState`], serde), and it can also be rebuilt
//! from allocations found elsewhere (the manager's store) with the
//! `restore_*` methods, so after a leader change no address is handed out
//! twice.

mod bits;
mod config;
mod error;
mod request;
mod subnet;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use swarm_api::net::Cidr;

pub use bits::Family;
pub use config::{AddressPool, ExplicitSubnets, IpamConfig};
pub use error::IpamError;
pub use request::SubnetRequest;
pub use subnet::SubnetState;

use bits::{bounds, cidr_at};

/// Who holds an address.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// A task's (or a node's) attachment, by task or node id.
    Endpoint(String),
    /// A service's virtual IP, by service id.
    Vip(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Endpoint(id) => write!(f, "endpoint {id}"),
            Owner::Vip(id) => write!(f, "the VIP of service {id}"),
        }
    }
}

/// The subnets of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkIpam {
    /// Subnets in allocation order (IPv4 ones first when both were asked).
    pub subnets: Vec<SubnetState>,
}

/// The whole IPAM state, as plain data to persist.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IpamState {
    /// Networks by id.
    pub networks: BTreeMap<String, NetworkIpam>,
}

/// The address allocator. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Ipam {
    config: IpamConfig,
    state: IpamState,
    /// Derived index: addresses per (network, owner).
    owners: HashMap<(String, Owner), Vec<IpAddr>>,
}

impl Ipam {
    /// An empty allocator over the configured pools.
    pub fn new(config: IpamConfig) -> Ipam {
        Ipam {
            config,
            state: IpamState::default(),
            owners: HashMap::new(),
        }
    }

    /// An allocator resuming from a persisted state. The state is checked:
    /// subnets must not overlap, addresses must lie in their subnet and not
    /// be reserved.
    pub fn restore(config: IpamConfig, state: IpamState) -> Result<Ipam, IpamError> {
        let mut ipam = Ipam::new(config);
        for (id, net) in state.networks {
            let mut requests = Vec::new();
            for s in &net.subnets {
                requests.push(SubnetRequest::from_state(s));
            }
            ipam.restore_network(&id, &requests)?;
            for (i, s) in net.subnets.into_iter().enumerate() {
                for (addr, owner) in s.addresses {
                    ipam.restore_address(&id, owner, addr)?;
                }
                if let Some(slot) = ipam
                    .state
                    .networks
                    .get_mut(&id)
                    .and_then(|n| n.subnets.get_mut(i))
                {
                    slot.last = s.last;
                }
            }
        }
        Ok(ipam)
    }

    /// The configuration.
    pub fn config(&self) -> &IpamConfig {
        &self.config
    }

    /// The state to persist.
    pub fn state(&self) -> &IpamState {
        &self.state
    }

    /// One network's subnets.
    pub fn network(&self, id: &str) -> Option<&NetworkIpam> {
        self.state.networks.get(id)
    }

    /// Allocates the subnets of a new network: one per request (an empty
    /// request list means one IPv4 subnet from the pools). Explicit subnets
    /// are checked against the pools and every allocated subnet; the rest
    /// are carved from the pools. All or nothing.
    pub fn allocate_network(
        &mut self,
        id: &str,
        requests: &[SubnetRequest],
    ) -> Result<&NetworkIpam, IpamError> {
        self.add_network(id, requests, false)
    }

    /// Records an allocation made before (from a network object in the
    /// store): like [`Ipam::allocate_network`] but every request must carry
    /// its subnet.
    pub fn restore_network(
        &mut self,
        id: &str,
        requests: &[SubnetRequest],
    ) -> Result<&NetworkIpam, IpamError> {
        self.add_network(id, requests, true)
    }

    fn add_network(
        &mut self,
        id: &str,
        requests: &[SubnetRequest],
        restoring: bool,
    ) -> Result<&NetworkIpam, IpamError> {
        if self.state.networks.contains_key(id) {
            return Err(IpamError::NetworkExists(id.to_string()));
        }
        let default_request = [SubnetRequest::default()];
        let requests = if requests.is_empty() {
            &default_request[..]
        } else {
            requests
        };
        let mut planned: Vec<SubnetState> = Vec::new();
        for req in requests {
            let taken: Vec<(Cidr, &str)> = self
                .all_subnets()
                .chain(planned.iter().map(|s| (s.subnet, id)))
                .collect();
            let (subnet, from_pool) = match req.subnet {
                Some(subnet) => {
                    self.check_explicit(&subnet, &taken, restoring)?;
                    let from_pool = req.from_pool.unwrap_or_else(|| {
                        self.config
                            .pools()
                            .iter()
                            .any(|p| p.covers(&subnet) && p.subnet_size == subnet.prefix())
                    });
                    (subnet, from_pool)
                }
                None if restoring => {
                    return Err(IpamError::BadInput {
                        field: "subnet".into(),
                        value: String::new(),
                        reason: "a restored network must name its subnets".into(),
                    });
                }
                None => (self.carve(req.family.unwrap_or(Family::V4), &taken)?, true),
            };
            planned.push(req.build(subnet, from_pool)?);
        }
        let net = NetworkIpam { subnets: planned };
        Ok(self.state.networks.entry(id.to_string()).or_insert(net))
    }

    fn check_explicit(
        &self,
        subnet: &Cidr,
        taken: &[(Cidr, &str)],
        restoring: bool,
    ) -> Result<(), IpamError> {
        if !subnet.is_canonical() {
            return Err(IpamError::SubnetNotCanonical(*subnet));
        }
        if subnet.prefix() > Family::of_cidr(subnet).max_network_prefix() {
            return Err(IpamError::SubnetTooSmall(*subnet));
        }
        // A subnet allocated earlier stays valid if the pools changed since.
        if !restoring {
            self.config.check_explicit(subnet)?;
        }
        if let Some((existing, network)) = taken.iter().find(|(c, _)| c.overlaps(subnet)) {
            return Err(IpamError::SubnetOverlaps {
                subnet: *subnet,
                existing: *existing,
                network: network.to_string(),
            });
        }
        Ok(())
    }

    fn all_subnets(&self) -> impl Iterator<Item = (Cidr, &str)> {
        self.state
            .networks
            .iter()
            .flat_map(|(id, n)| n.subnets.iter().map(move |s| (s.subnet, id.as_str())))
    }

    /// The lowest free subnet of the family's pools.
    fn carve(&self, family: Family, taken: &[(Cidr, &str)]) -> Result<Cidr, IpamError> {
        let pools: Vec<&AddressPool> = self
            .config
            .pools()
            .iter()
            .filter(|p| p.family() == family)
            .collect();
        if pools.is_empty() {
            return Err(IpamError::NoPool(family));
        }
        let mut sorted: Vec<(u128, u128)> = taken.iter().map(|(c, _)| bounds(c)).collect();
        sorted.sort_unstable();
        for pool in &pools {
            let (lo, hi) = bounds(&pool.base);
            let step = 1u128 << (family.width() - pool.subnet_size);
            let mut cand = lo;
            // Walk the taken subnets in order, jumping past each overlap.
            let mut i = 0;
            while cand <= hi && hi - cand >= step - 1 {
                let end = cand + (step - 1);
                while i < sorted.len() && sorted[i].1 < cand {
                    i += 1;
                }
                match sorted[i..].iter().find(|(s, e)| *s <= end && *e >= cand) {
                    None => return Ok(cidr_at(family, cand, pool.subnet_size)),
                    Some((_, e)) => {
                        // Next aligned candidate after the overlapping subnet.
                        let next = ((e - lo) / step * step)
                            .checked_add(step)
                            .and_then(|n| n.checked_add(lo));
                        match next {
                            Some(next) if next > cand => cand = next,
                            _ => break,
                        }
                    }
                }
            }
        }
        let size = pools.first().map_or(0, |p| p.subnet_size);
        Err(IpamError::PoolExhausted {
            family,
            size,
            pools: self.config.describe(family),
        })
    }

    /// Releases a network's subnets and every address in them. Returns false
    /// when the network had none.
    pub fn release_network(&mut self, id: &str) -> bool {
        self.owners.retain(|(net, _), _| net != id);
        self.state.networks.remove(id).is_some()
    }

    /// The addresses `owner` holds on a network, with prefix lengths.
    pub fn addresses_of(&self, network: &str, owner: &Owner) -> Vec<Cidr> {
        let Some(net) = self.state.networks.get(network) else {
            return Vec::new();
        };
        self.owners
            .get(&(network.to_string(), owner.clone()))
            .map(|ips| {
                let mut v: Vec<Cidr> = ips.iter().filter_map(|ip| with_prefix(net, ip)).collect();
                v.sort_by_key(|c| (c.is_ipv6(), c.addr()));
                v
            })
            .unwrap_or_default()
    }

    /// Allocates addresses for `owner` on a network: one per address family
    /// the network has (IPv4 first), or exactly the `requested` ones plus one
    /// for each family they leave out. Returns the addresses with their
    /// subnet's prefix length (`10.0.0.5/24`), as tasks store them.
    ///
    /// Idempotent: an owner that already holds addresses on the network gets
    /// them back.
    pub fn allocate_address(
        &mut self,
        network: &str,
        owner: Owner,
        requested: &[IpAddr],
    ) -> Result<Vec<Cidr>, IpamError> {
        let held = self.addresses_of(network, &owner);
        if !held.is_empty() {
            return Ok(held);
        }
        let net = self
            .state
            .networks
            .get(network)
            .ok_or_else(|| IpamError::UnknownNetwork(network.to_string()))?;
        // Plan every address before taking any: all or nothing.
        let mut plan: Vec<(usize, IpAddr)> = Vec::new();
        for ip in requested {
            let idx = self.check_free(network, net, ip)?;
            if plan.iter().any(|(_, p)| p == ip) {
                return Err(IpamError::BadInput {
                    field: "requested addresses".into(),
                    value: ip.to_string(),
                    reason: "requested twice".into(),
                });
            }
            plan.push((idx, *ip));
        }
        let mut families: Vec<Family> = Vec::new();
        for s in &net.subnets {
            if !families.contains(&s.family()) {
                families.push(s.family());
            }
        }
        families.sort();
        for family in families {
            if plan.iter().any(|(_, ip)| Family::of(ip) == family) {
                continue;
            }
            let found = net
                .subnets
                .iter()
                .enumerate()
                .filter(|(_, s)| s.family() == family)
                .find_map(|(i, s)| s.next_free().map(|ip| (i, ip)));
            match found {
                Some(p) => plan.push(p),
                None => {
                    return Err(IpamError::NetworkFull {
                        network: network.to_string(),
                        family,
                        subnets: describe_subnets(net, family),
                    });
                }
            }
        }
        let auto: Vec<IpAddr> = plan
            .iter()
            .map(|(_, ip)| *ip)
            .filter(|ip| !requested.contains(ip))
            .collect();
        for (idx, ip) in &plan {
            self.take(network, *idx, *ip, owner.clone(), auto.contains(ip));
        }
        Ok(self.addresses_of(network, &owner))
    }

    /// Records an address allocated before (found on a task, node or
    /// service in the store). Fails if it is outside the network, reserved,
    /// or held by another owner; re-recording the same holder is a no-op.
    pub fn restore_address(
        &mut self,
        network: &str,
        owner: Owner,
        addr: IpAddr,
    ) -> Result<(), IpamError> {
        let net = self
            .state
            .networks
            .get(network)
            .ok_or_else(|| IpamError::UnknownNetwork(network.to_string()))?;
        if net
            .subnets
            .iter()
            .any(|s| s.addresses.get(&addr) == Some(&owner))
        {
            return Ok(());
        }
        let idx = self.check_free(network, net, &addr)?;
        self.take(network, idx, addr, owner, false);
        // Resume after the highest restored address, so that a rebuilt
        // allocator does not hand out just-released addresses first.
        if let Some(s) = self
            .state
            .networks
            .get_mut(network)
            .and_then(|n| n.subnets.get_mut(idx))
            && s.last.is_none_or(|l| l < addr)
        {
            s.last = Some(addr);
        }
        Ok(())
    }

    /// Releases every address `owner` holds on a network; returns them.
    pub fn release_owner(&mut self, network: &str, owner: &Owner) -> Vec<IpAddr> {
        let ips = self
            .owners
            .remove(&(network.to_string(), owner.clone()))
            .unwrap_or_default();
        if let Some(net) = self.state.networks.get_mut(network) {
            for ip in &ips {
                for s in &mut net.subnets {
                    s.addresses.remove(ip);
                }
            }
        }
        ips
    }

    /// Releases one address, whoever holds it; returns its holder.
    pub fn release_address(&mut self, network: &str, addr: &IpAddr) -> Option<Owner> {
        let net = self.state.networks.get_mut(network)?;
        let owner = net
            .subnets
            .iter_mut()
            .find_map(|s| s.addresses.remove(addr))?;
        let key = (network.to_string(), owner.clone());
        if let Some(ips) = self.owners.get_mut(&key) {
            ips.retain(|ip| ip != addr);
            if ips.is_empty() {
                self.owners.remove(&key);
            }
        }
        Some(owner)
    }

    fn check_free(
        &self,
        network: &str,
        net: &NetworkIpam,
        ip: &IpAddr,
    ) -> Result<usize, IpamError> {
        let (idx, s) = net
            .subnets
            .iter()
            .enumerate()
            .find(|(_, s)| s.subnet.contains(ip))
            .ok_or_else(|| IpamError::AddressOutsideNetwork {
                addr: *ip,
                network: network.to_string(),
            })?;
        if let Some(what) = s.reservation(ip) {
            return Err(IpamError::AddressReserved {
                addr: *ip,
                network: network.to_string(),
                what,
            });
        }
        if let Some(owner) = s.addresses.get(ip) {
            return Err(IpamError::AddressInUse {
                addr: *ip,
                network: network.to_string(),
                owner: owner.clone(),
            });
        }
        Ok(idx)
    }

    fn take(&mut self, network: &str, idx: usize, ip: IpAddr, owner: Owner, advance: bool) {
        if let Some(s) = self
            .state
            .networks
            .get_mut(network)
            .and_then(|n| n.subnets.get_mut(idx))
        {
            s.addresses.insert(ip, owner.clone());
            if advance {
                s.last = Some(ip);
            }
            self.owners
                .entry((network.to_string(), owner))
                .or_default()
                .push(ip);
        }
    }
}

fn with_prefix(net: &NetworkIpam, ip: &IpAddr) -> Option<Cidr> {
    let s = net.subnets.iter().find(|s| s.subnet.contains(ip))?;
    Cidr::new(*ip, s.subnet.prefix()).ok()
}

fn describe_subnets(net: &NetworkIpam, family: Family) -> String {
    net.subnets
        .iter()
        .filter(|s| s.family() == family)
        .map(|s| s.subnet.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first host address of a network (its network address + 1): the
/// default gateway.
pub fn first_host(c: &Cidr) -> IpAddr {
    let (lo, _) = bounds(c);
    bits::from_bits(Family::of_cidr(c), lo + 1)
}

#[cfg(test)]
mod tests;
