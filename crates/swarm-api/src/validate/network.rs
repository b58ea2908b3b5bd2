//! Network specs.

use std::net::IpAddr;

use super::{Result, fail, known, labels, validate_name};
use crate::net::Cidr;
use crate::v1::{AddressFamily, NetworkSpec};

/// Checks a network spec. Field paths start at `spec`.
pub fn validate_network_spec(spec: &NetworkSpec) -> Result {
    let Some(annotations) = &spec.annotations else {
        return fail("spec.annotations.name", "a name is required");
    };
    validate_name("spec.annotations.name", &annotations.name)?;
    labels("spec.annotations.labels", &annotations.labels)?;
    if let Some(d) = &spec.driver_config {
        let ok = d
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
        if !ok {
            return fail(
                "spec.driver_config.name",
                format!("{:?} is not a driver name", d.name),
            );
        }
    }
    if spec.ingress && spec.internal {
        return fail("spec.internal", "an ingress network cannot be internal");
    }
    if spec.ingress && spec.attachable {
        return fail("spec.attachable", "an ingress network cannot be attachable");
    }
    let Some(ipam) = &spec.ipam else {
        return Ok(());
    };
    let mut subnets: Vec<Cidr> = Vec::new();
    for (i, c) in ipam.configs.iter().enumerate() {
        let f = format!("spec.ipam.configs[{i}]");
        known::<AddressFamily>(&format!("{f}.family"), c.family)?;
        let subnet: Cidr = match c.subnet.parse() {
            Ok(s) => s,
            Err(e) => return fail(format!("{f}.subnet"), e.to_string()),
        };
        if !subnet.is_canonical() {
            return fail(
                format!("{f}.subnet"),
                format!(
                    "{} has host bits set; did you mean {}?",
                    c.subnet,
                    subnet.network()
                ),
            );
        }
        let family_ok = match c.family() {
            AddressFamily::Unknown => true,
            AddressFamily::Ipv4 => !subnet.is_ipv6(),
            AddressFamily::Ipv6 => subnet.is_ipv6(),
        };
        if !family_ok {
            return fail(
                format!("{f}.subnet"),
                format!("{} does not match family {}", c.subnet, c.family()),
            );
        }
        if subnet.is_ipv6() && !spec.ipv6_enabled {
            return fail(
                format!("{f}.subnet"),
                format!("{} is IPv6 but ipv6_enabled is false", c.subnet),
            );
        }
        let max_prefix = if subnet.is_ipv6() { 126 } else { 30 };
        if subnet.prefix() > max_prefix {
            return fail(
                format!("{f}.subnet"),
                format!("{} is too small for a network", c.subnet),
            );
        }
        if let Some(other) = subnets.iter().find(|s| s.overlaps(&subnet)) {
            return fail(
                format!("{f}.subnet"),
                format!("{} overlaps {other}", c.subnet),
            );
        }
        if !c.range.is_empty() {
            let range: Cidr = match c.range.parse() {
                Ok(r) => r,
                Err(e) => return fail(format!("{f}.range"), e.to_string()),
            };
            if range.prefix() < subnet.prefix() || !subnet.contains(&range.addr()) {
                return fail(
                    format!("{f}.range"),
                    format!("{} is not inside {}", c.range, c.subnet),
                );
            }
        }
        if !c.gateway.is_empty() {
            let gw: IpAddr = match c.gateway.parse() {
                Ok(g) => g,
                Err(_) => {
                    return fail(
                        format!("{f}.gateway"),
                        format!("{:?} is not an IP address", c.gateway),
                    );
                }
            };
            if !subnet.contains(&gw) {
                return fail(
                    format!("{f}.gateway"),
                    format!("{gw} is not inside {}", c.subnet),
                );
            }
            if gw == subnet.network().addr() || (!subnet.is_ipv6() && gw == subnet.last()) {
                return fail(
                    format!("{f}.gateway"),
                    format!("{gw} is the network or broadcast address"),
                );
            }
        }
        for (name, addr) in &c.reserved {
            match addr.parse::<IpAddr>() {
                Ok(ip) if subnet.contains(&ip) => {}
                _ => {
                    return fail(
                        format!("{f}.reserved[{name}]"),
                        format!("{addr:?} is not an address inside {}", c.subnet),
                    );
                }
            }
        }
        subnets.push(subnet);
    }
    Ok(())
}
