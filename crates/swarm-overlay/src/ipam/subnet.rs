//! One allocated subnet and the addresses handed out in it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use swarm_api::net::Cidr;

use super::bits::{bounds, from_bits, to_bits};
use super::{Family, Owner};

/// A subnet of a network and its allocations, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubnetState {
    /// The subnet.
    #[serde(with = "crate::serde_cidr")]
    pub subnet: Cidr,
    /// Sub-range addresses are picked from (the whole subnet when unset).
    #[serde(
        with = "crate::serde_cidr::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub range: Option<Cidr>,
    /// The gateway address.
    pub gateway: IpAddr,
    /// True when the subnet was carved from a pool (false: given explicitly).
    pub from_pool: bool,
    /// Addresses kept out of allocation, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reserved: BTreeMap<String, IpAddr>,
    /// Allocated addresses and their holders.
    #[serde(default)]
    pub addresses: BTreeMap<IpAddr, Owner>,
    /// The last address handed out automatically: the next search starts
    /// after it, so a released address is not reused at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<IpAddr>,
}

impl SubnetState {
    /// The family of the subnet.
    pub fn family(&self) -> Family {
        Family::of_cidr(&self.subnet)
    }

    /// Why `ip` can never be allocated, if it cannot: the network address,
    /// the IPv4 broadcast address, the gateway or a named reservation.
    pub fn reservation(&self, ip: &IpAddr) -> Option<String> {
        let net = self.subnet.network();
        if *ip == net.addr() {
            return Some("network address".into());
        }
        if self.family() == Family::V4 && self.subnet.prefix() < 31 && *ip == self.subnet.last() {
            return Some("broadcast address".into());
        }
        if *ip == self.gateway {
            return Some("gateway".into());
        }
        self.reserved
            .iter()
            .find(|(_, r)| *r == ip)
            .map(|(name, _)| format!("reserved as {name:?}"))
    }

    /// Bounds of the allocation range as numbers.
    fn range_bounds(&self) -> (u128, u128) {
        let (lo, hi) = bounds(&self.subnet);
        match &self.range {
            Some(r) => {
                let (rlo, rhi) = bounds(r);
                (rlo.max(lo), rhi.min(hi))
            }
            None => (lo, hi),
        }
    }

    /// Numbers of the addresses in the range that are never allocated.
    fn excluded_in_range(&self) -> BTreeSet<u128> {
        let (lo, hi) = self.range_bounds();
        let (net, last) = bounds(&self.subnet);
        let mut out = BTreeSet::new();
        out.insert(net);
        if self.family() == Family::V4 && self.subnet.prefix() < 31 {
            out.insert(last);
        }
        out.insert(to_bits(&self.gateway));
        out.extend(self.reserved.values().map(to_bits));
        out.retain(|b| (lo..=hi).contains(b));
        out
    }

    /// The next free address after the last one handed out, wrapping around
    /// the range; `None` when the range is full.
    pub fn next_free(&self) -> Option<IpAddr> {
        let (lo, hi) = self.range_bounds();
        let family = self.family();
        let excluded = self.excluded_in_range();
        let taken = self
            .addresses
            .range(from_bits(family, lo)..=from_bits(family, hi))
            .filter(|(ip, _)| !excluded.contains(&to_bits(ip)))
            .count() as u128;
        let size = hi - lo + 1;
        if size <= excluded.len() as u128 + taken {
            return None;
        }
        let start = match self.last.map(|ip| to_bits(&ip)) {
            Some(b) if b >= lo && b < hi => b + 1,
            _ => lo,
        };
        // At most `taken + excluded + 1` candidates are looked at before a
        // free one, since the range is known not to be full.
        let mut cand = start;
        loop {
            let ip = from_bits(family, cand);
            if !excluded.contains(&cand) && !self.addresses.contains_key(&ip) {
                return Some(ip);
            }
            cand = if cand >= hi { lo } else { cand + 1 };
            if cand == start {
                // Unreachable while the counts above are right.
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(s: &str, gw: &str) -> SubnetState {
        SubnetState {
            subnet: s.parse().unwrap(),
            range: None,
            gateway: gw.parse().unwrap(),
            from_pool: true,
            reserved: BTreeMap::new(),
            addresses: BTreeMap::new(),
            last: None,
        }
    }

    #[test]
    fn reservations_table() {
        let mut s = subnet("10.0.0.0/24", "10.0.0.1");
        s.reserved
            .insert("dns".into(), "10.0.0.53".parse().unwrap());
        let table = [
            ("10.0.0.0", Some("network address")),
            ("10.0.0.255", Some("broadcast address")),
            ("10.0.0.1", Some("gateway")),
            ("10.0.0.53", Some("reserved as \"dns\"")),
            ("10.0.0.2", None),
        ];
        for (ip, want) in table {
            assert_eq!(s.reservation(&ip.parse().unwrap()).as_deref(), want, "{ip}");
        }
        let v6 = subnet("fd00::/64", "fd00::1");
        assert_eq!(
            v6.reservation(&"fd00::ffff:ffff:ffff:ffff".parse().unwrap()),
            None
        );
    }

    #[test]
    fn next_free_skips_and_wraps() {
        let mut s = subnet("10.0.0.0/29", "10.0.0.1");
        assert_eq!(s.next_free().unwrap().to_string(), "10.0.0.2");
        for i in 2..=6 {
            let ip: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            assert_eq!(s.next_free(), Some(ip));
            s.addresses.insert(ip, Owner::Endpoint(format!("t{i}")));
            s.last = Some(ip);
        }
        assert_eq!(s.next_free(), None, "/29 holds 5 hosts besides the gateway");
        s.addresses.remove(&"10.0.0.3".parse().unwrap());
        assert_eq!(
            s.next_free().unwrap().to_string(),
            "10.0.0.3",
            "wraps around"
        );
    }

    #[test]
    fn range_limits_allocation() {
        let mut s = subnet("10.0.0.0/24", "10.0.0.1");
        s.range = Some("10.0.0.128/30".parse().unwrap());
        let mut got = vec![];
        while let Some(ip) = s.next_free() {
            s.addresses.insert(ip, Owner::Vip(ip.to_string()));
            s.last = Some(ip);
            got.push(ip.to_string());
        }
        assert_eq!(
            got,
            ["10.0.0.128", "10.0.0.129", "10.0.0.130", "10.0.0.131"]
        );
    }
}
