//! MAC addresses of overlay endpoints, derived from their IP address.
//!
//! Like Docker, an endpoint's MAC is a pure function of its overlay IP
//! (`02:42` followed by the four bytes of the IPv4 address), so the manager
//! never has to store MACs: every node computes the same MAC for a peer from
//! the address it already knows.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// Text that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex bytes separated by ':')")]
pub struct ParseMacError(String);

impl MacAddr {
    /// The MAC of the endpoint that holds `ip`: `02:42:` followed by the last
    /// four bytes of the address (the whole address for IPv4). The `02` sets
    /// the locally-administered bit and clears the multicast bit.
    ///
    /// For a dual-stack endpoint derive the MAC from its IPv4 address. Two
    /// IPv6 addresses that share their last 32 bits map to the same MAC, so
    /// an IPv6-only network should not be larger than a /96.
    pub fn from_ip(ip: IpAddr) -> MacAddr {
        let tail = match ip {
            IpAddr::V4(v4) => v4.octets(),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                [o[12], o[13], o[14], o[15]]
            }
        };
        MacAddr([0x02, 0x42, tail[0], tail[1], tail[2], tail[3]])
    }

    /// The six bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// A MAC from bytes as netlink reports them; `None` unless exactly six.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, ParseMacError> {
        let bad = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_like_docker() {
        let mac = MacAddr::from_ip("10.0.1.7".parse().unwrap());
        assert_eq!(mac.to_string(), "02:42:0a:00:01:07");
        let mac6 = MacAddr::from_ip("fd00::a:b0c".parse().unwrap());
        assert_eq!(mac6.to_string(), "02:42:00:0a:0b:0c");
        // Unicast, locally administered.
        assert_eq!(mac.0[0] & 1, 0);
        assert_eq!(mac.0[0] & 2, 2);
    }

    #[test]
    fn parse_round_trip_and_refusals() {
        let mac: MacAddr = "02:42:0a:00:01:07".parse().unwrap();
        assert_eq!(mac.to_string().parse::<MacAddr>().unwrap(), mac);
        for bad in [
            "",
            "02:42",
            "02:42:0a:00:01:07:08",
            "2:42:0a:00:01:07",
            "zz:42:0a:00:01:07",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
    }
}
