//! What the driver writes into interface aliases (`ifalias`) so that a
//! restarted agent can tell its own interfaces apart and rebuild its books
//! from the kernel alone.

use std::collections::BTreeMap;

use swarm_api::net::Cidr;

const TAG: &str = "swarm-overlay";

/// The alias of a network's bridge.
pub(crate) fn network(id: &str) -> String {
    format!("{TAG} net={id}")
}

/// The alias of an endpoint's outer veth end.
pub(crate) fn endpoint(id: &str, ifname: &str, addresses: &[Cidr]) -> String {
    let addrs: Vec<String> = addresses.iter().map(Cidr::to_string).collect();
    format!("{TAG} ep={id} if={ifname} addrs={}", addrs.join(","))
}

fn fields(alias: &str) -> Option<BTreeMap<&str, &str>> {
    let rest = alias.strip_prefix(TAG)?.strip_prefix(' ')?;
    rest.split(' ')
        .map(|kv| kv.split_once('='))
        .collect::<Option<BTreeMap<_, _>>>()
}

/// The network id in a bridge alias.
pub(crate) fn parse_network(alias: &str) -> Option<String> {
    let f = fields(alias)?;
    let id = f.get("net")?;
    (!id.is_empty()).then(|| id.to_string())
}

/// Endpoint id, interface name and addresses in a veth alias.
pub(crate) fn parse_endpoint(alias: &str) -> Option<(String, String, Vec<Cidr>)> {
    let f = fields(alias)?;
    let id = f.get("ep")?;
    let ifname = f.get("if")?;
    let addrs = f
        .get("addrs")?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Cidr>().ok())
        .collect::<Option<Vec<_>>>()?;
    if id.is_empty() || ifname.is_empty() || addrs.is_empty() {
        return None;
    }
    Some((id.to_string(), ifname.to_string(), addrs))
}

/// True when an id can be written into an alias and read back: 1 to 64
/// characters of `[A-Za-z0-9_.-]` (swarm ids are 25 base-36 characters).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        assert_eq!(parse_network(&network("abc123")).as_deref(), Some("abc123"));
        let addrs: Vec<Cidr> = vec![
            "10.0.0.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let a = endpoint("task1", "eth0", &addrs);
        assert_eq!(
            parse_endpoint(&a),
            Some(("task1".into(), "eth0".into(), addrs))
        );
        // The longest alias we write fits IFALIASZ (256).
        let long: Vec<Cidr> = vec![
            "255.255.255.254/24".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/64"
                .parse()
                .unwrap(),
        ];
        assert!(endpoint(&"x".repeat(64), "abcdefghijklmno", &long).len() < 256);
        for bad in [
            "",
            "swarm-overlay",
            "other net=x",
            "swarm-overlay net=",
            "swarm-overlay ep=x if=eth0 addrs=",
            "swarm-overlay ep=x if=eth0 addrs=bad",
        ] {
            assert!(
                parse_endpoint(bad).is_none()
                    && (bad.contains("net=x") || parse_network(bad).is_none()),
                "{bad}"
            );
        }
        assert!(valid_id("a-b_c.9"));
        assert!(!valid_id("a b") && !valid_id("") && !valid_id(&"a".repeat(65)));
    }
}
