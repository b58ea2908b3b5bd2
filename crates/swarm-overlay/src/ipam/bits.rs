//! Address arithmetic on `u128`, the same for IPv4 and IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use swarm_api::net::Cidr;

/// An IP address family.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv6() { Family::V6 } else { Family::V4 }
    }

    /// The family of a network.
    pub fn of_cidr(c: &Cidr) -> Family {
        Family::of(&c.addr())
    }

    /// Bit width of addresses of the family.
    pub fn width(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// Longest prefix that still leaves room for a network with hosts:
    /// /30 for IPv4 (two hosts), /126 for IPv6.
    pub fn max_network_prefix(self) -> u8 {
        self.width() - 2
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

pub(crate) fn to_bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

/// The address of `family` with value `bits`. IPv4 keeps the low 32 bits;
/// callers only pass values that came from IPv4 addresses plus offsets that
/// stay inside an IPv4 network.
pub(crate) fn from_bits(family: Family, bits: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from((bits & u128::from(u32::MAX)) as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// First and last address of a network, as numbers.
pub(crate) fn bounds(c: &Cidr) -> (u128, u128) {
    (to_bits(&c.network().addr()), to_bits(&c.last()))
}

/// The network of `prefix` bits whose first address is `start`.
pub(crate) fn cidr_at(family: Family, start: u128, prefix: u8) -> Cidr {
    debug_assert!(prefix <= family.width());
    #[allow(
        clippy::expect_used,
        reason = "the prefix is clamped to the family width, which Cidr::new accepts"
    )]
    Cidr::new(from_bits(family, start), prefix.min(family.width()))
        .expect("prefix within family width")
}

/// `a` contains all of `b`.
pub(crate) fn covers(a: &Cidr, b: &Cidr) -> bool {
    a.prefix() <= b.prefix() && a.contains(&b.network().addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let c: Cidr = "10.0.1.0/24".parse().unwrap();
        let (lo, hi) = bounds(&c);
        assert_eq!(hi - lo, 255);
        assert_eq!(cidr_at(Family::V4, lo + 256, 24).to_string(), "10.0.2.0/24");
        assert!(covers(&"10.0.0.0/8".parse().unwrap(), &c));
        assert!(!covers(&c, &"10.0.0.0/8".parse().unwrap()));
        assert_eq!(from_bits(Family::V6, 1).to_string(), "::1");
    }
}
