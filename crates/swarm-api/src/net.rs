//! IP networks in CIDR form, as network specs and allocations write them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: an address and a prefix length, e.g. `10.0.1.0/24`.
///
/// Parsing keeps the address as written; [`Cidr::is_canonical`] tells
/// whether host bits are set, and [`Cidr::network`] clears them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Text that is not a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// No `/` separates address and prefix.
    #[error("{0:?} is not in CIDR form (address/prefix)")]
    NotCidr(String),
    /// The address does not parse.
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    /// The prefix is not a number within the family's bit width.
    #[error("prefix length {prefix:?} is out of range 0..={max}")]
    BadPrefix {
        /// The prefix as written.
        prefix: String,
        /// The largest prefix for the family.
        max: u8,
    },
}

impl Cidr {
    /// A network from an address and a prefix length.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = max_prefix(&addr);
        if prefix > max {
            return Err(CidrError::BadPrefix {
                prefix: prefix.to_string(),
                max,
            });
        }
        Ok(Cidr { addr, prefix })
    }

    /// The address as written.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True for an IPv6 network.
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// The network with host bits cleared.
    pub fn network(&self) -> Cidr {
        Cidr {
            addr: from_bits(&self.addr, to_bits(&self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    /// True when no host bit is set.
    pub fn is_canonical(&self) -> bool {
        self.network().addr == self.addr
    }

    /// The last address of the network (the IPv4 broadcast address).
    pub fn last(&self) -> IpAddr {
        from_bits(
            &self.addr,
            to_bits(&self.addr) | !self.mask() & family_mask(&self.addr),
        )
    }

    /// True when `ip` is inside the network.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        ip.is_ipv6() == self.addr.is_ipv6()
            && to_bits(ip) & self.mask() == to_bits(&self.addr) & self.mask()
    }

    /// True when the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(&other.network().addr) || other.contains(&self.network().addr)
    }

    /// Number of addresses, saturating at `u128::MAX`.
    pub fn size(&self) -> u128 {
        let host_bits = u32::from(max_prefix(&self.addr) - self.prefix);
        1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
    }

    fn mask(&self) -> u128 {
        let width = u32::from(max_prefix(&self.addr));
        let host_bits = width - u32::from(self.prefix);
        let all = family_mask(&self.addr);
        all.checked_shl(host_bits).unwrap_or(0) & all
    }
}

fn max_prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv6() { 128 } else { 32 }
}

fn family_mask(ip: &IpAddr) -> u128 {
    if ip.is_ipv6() {
        u128::MAX
    } else {
        u128::from(u32::MAX)
    }
}

fn to_bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

fn from_bits(family: &IpAddr, bits: u128) -> IpAddr {
    match family {
        // Only the low 32 bits are ever set for IPv4 (masked by family_mask).
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| CidrError::NotCidr(s.to_string()))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_string()))?;
        let max = max_prefix(&addr);
        let bad = || CidrError::BadPrefix {
            prefix: prefix.to_string(),
            max,
        };
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_table() {
        let table: &[(&str, bool)] = &[
            ("10.0.0.0/8", true),
            ("10.0.1.0/24", true),
            ("0.0.0.0/0", true),
            ("192.168.1.7/32", true),
            ("fd00::/64", true),
            ("::/0", true),
            ("10.0.0.0", false),
            ("10.0.0.0/33", false),
            ("fd00::/129", false),
            ("10.0.0.0/-1", false),
            ("10.0.0.0/+8", false),
            ("10.0.0/8", false),
            ("10.0.0.0/", false),
            ("/8", false),
            ("10.0.0.0/0008", false),
        ];
        for (text, ok) in table {
            assert_eq!(text.parse::<Cidr>().is_ok(), *ok, "{text}");
        }
    }

    #[test]
    fn network_membership_and_overlap() {
        assert!(c("10.0.1.0/24").is_canonical());
        assert!(!c("10.0.1.5/24").is_canonical());
        assert_eq!(c("10.0.1.5/24").network(), c("10.0.1.0/24"));
        assert_eq!(
            c("10.0.1.0/24").last(),
            "10.0.1.255".parse::<IpAddr>().unwrap()
        );
        assert!(c("10.0.0.0/8").contains(&"10.200.3.4".parse().unwrap()));
        assert!(!c("10.0.0.0/8").contains(&"11.0.0.1".parse().unwrap()));
        assert!(!c("10.0.0.0/8").contains(&"::1".parse().unwrap()));
        assert!(c("10.0.0.0/8").overlaps(&c("10.1.0.0/16")));
        assert!(c("10.1.0.0/16").overlaps(&c("10.0.0.0/8")));
        assert!(!c("10.0.1.0/24").overlaps(&c("10.0.2.0/24")));
        assert!(!c("10.0.1.0/24").overlaps(&c("fd00::/8")));
        assert_eq!(c("10.0.1.0/24").size(), 256);
        assert_eq!(c("::/0").size(), u128::MAX);
        assert!(c("0.0.0.0/0").contains(&"255.255.255.255".parse().unwrap()));
        assert_eq!(
            c("fd00::/120").last(),
            "fd00::ff".parse::<IpAddr>().unwrap()
        );
    }
}
