//! IPAM behaviour tables and properties.

use std::collections::HashSet;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(id: &str) -> Owner {
    Owner::Endpoint(id.into())
}

#[test]
fn default_pool_hands_out_consecutive_slash_24s() {
    let mut ipam = Ipam::new(IpamConfig::default());
    let mut got = Vec::new();
    for n in 0..3 {
        let net = ipam.allocate_network(&format!("n{n}"), &[]).unwrap();
        got.push((
            net.subnets[0].subnet.to_string(),
            net.subnets[0].gateway.to_string(),
        ));
    }
    assert_eq!(
        got,
        [
            ("10.0.0.0/24".to_string(), "10.0.0.1".to_string()),
            ("10.0.1.0/24".into(), "10.0.1.1".into()),
            ("10.0.2.0/24".into(), "10.0.2.1".into()),
        ]
    );
    // A released subnet is the lowest free one again.
    assert!(ipam.release_network("n1"));
    let again = ipam.allocate_network("n3", &[]).unwrap();
    assert_eq!(again.subnets[0].subnet, cidr("10.0.1.0/24"));
}

#[test]
fn pool_allocation_skips_explicit_subnets() {
    let mut ipam = Ipam::new(IpamConfig::default());
    ipam.allocate_network("big", &[SubnetRequest::explicit(cidr("10.0.0.0/23"))])
        .unwrap();
    ipam.allocate_network("small", &[SubnetRequest::explicit(cidr("10.0.3.128/25"))])
        .unwrap();
    let a = ipam.allocate_network("a", &[]).unwrap().subnets[0].subnet;
    assert_eq!(a, cidr("10.0.2.0/24"));
    let b = ipam.allocate_network("b", &[]).unwrap().subnets[0].subnet;
    assert_eq!(
        b,
        cidr("10.0.4.0/24"),
        "10.0.3.0/24 overlaps the explicit /25"
    );
}

#[test]
fn bad_subnet_requests_table() {
    let mut ipam = Ipam::new(IpamConfig::default());
    ipam.allocate_network("taken", &[SubnetRequest::explicit(cidr("10.9.0.0/16"))])
        .unwrap();
    let before = ipam.state().clone();
    type Check = fn(&IpamError) -> bool;
    let table: Vec<(&str, SubnetRequest, Check)> = vec![
        (
            "overlap",
            SubnetRequest::explicit(cidr("10.9.4.0/24")),
            |e| matches!(e, IpamError::SubnetOverlaps { .. }),
        ),
        (
            "overlap bigger",
            SubnetRequest::explicit(cidr("10.8.0.0/15")),
            |e| matches!(e, IpamError::SubnetOverlaps { .. }),
        ),
        (
            "host bits",
            SubnetRequest::explicit(cidr("10.1.0.5/24")),
            |e| matches!(e, IpamError::SubnetNotCanonical(_)),
        ),
        (
            "too small",
            SubnetRequest::explicit(cidr("10.1.0.0/31")),
            |e| matches!(e, IpamError::SubnetTooSmall(_)),
        ),
        (
            "straddles pool",
            SubnetRequest::explicit(cidr("8.0.0.0/6")),
            |e| matches!(e, IpamError::SubnetOutsidePool { .. }),
        ),
        (
            "gateway outside",
            SubnetRequest::explicit(cidr("10.2.0.0/24")).with_gateway(ip("10.3.0.1")),
            |e| matches!(e, IpamError::BadGateway { .. }),
        ),
        (
            "gateway broadcast",
            SubnetRequest::explicit(cidr("10.2.0.0/24")).with_gateway(ip("10.2.0.255")),
            |e| matches!(e, IpamError::BadGateway { .. }),
        ),
        (
            "range outside",
            SubnetRequest::explicit(cidr("10.2.0.0/24")).with_range(cidr("10.2.1.0/28")),
            |e| matches!(e, IpamError::BadRange { .. }),
        ),
        ("no v6 pool", SubnetRequest::from_pool(Family::V6), |e| {
            matches!(e, IpamError::NoPool(Family::V6))
        }),
    ];
    for (name, req, check) in table {
        let err = ipam.allocate_network("new", &[req]).unwrap_err();
        assert!(check(&err), "{name}: {err}");
        assert!(!err.to_string().is_empty());
        assert_eq!(ipam.state(), &before, "{name}: nothing allocated");
    }
    // Two requests of one network that overlap each other: all or nothing.
    let err = ipam
        .allocate_network(
            "new",
            &[
                SubnetRequest::explicit(cidr("10.20.0.0/24")),
                SubnetRequest::explicit(cidr("10.20.0.0/25")),
            ],
        )
        .unwrap_err();
    assert!(matches!(err, IpamError::SubnetOverlaps { .. }));
    assert_eq!(ipam.state(), &before);
    assert!(matches!(
        ipam.allocate_network("taken", &[]),
        Err(IpamError::NetworkExists(_))
    ));
}

#[test]
fn subnet_outside_pool_refused_when_strict() {
    let cfg = IpamConfig::default().with_explicit_subnets(ExplicitSubnets::InsidePools);
    let mut ipam = Ipam::new(cfg);
    let err = ipam
        .allocate_network("n", &[SubnetRequest::explicit(cidr("192.168.0.0/24"))])
        .unwrap_err();
    assert!(matches!(err, IpamError::SubnetOutsidePool { .. }), "{err}");
    assert!(err.to_string().contains("10.0.0.0/8"), "{err}");
    assert!(ipam.state().networks.is_empty());
}

#[test]
fn full_pool_is_a_clear_error() {
    let pool = AddressPool::parse("192.168.0.0/22", 24).unwrap();
    let mut ipam = Ipam::new(IpamConfig::new(vec![pool], ExplicitSubnets::Anywhere).unwrap());
    for n in 0..4 {
        ipam.allocate_network(&format!("n{n}"), &[]).unwrap();
    }
    let err = ipam.allocate_network("n4", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no free /24 subnet left in the IPv4 address pools (192.168.0.0/22)"
    );
}

#[test]
fn addresses_skip_reserved_and_report_exhaustion() {
    let mut ipam = Ipam::new(IpamConfig::default());
    let req = SubnetRequest::explicit(cidr("172.30.0.0/29"))
        .with_gateway(ip("172.30.0.6"))
        .with_reserved("dns", ip("172.30.0.2"));
    ipam.allocate_network("n", &[req]).unwrap();
    let mut got = Vec::new();
    for i in 0..4 {
        match ipam.allocate_address("n", ep(&format!("t{i}")), &[]) {
            Ok(a) => got.push(a[0].to_string()),
            Err(e) => got.push(e.to_string()),
        }
    }
    assert_eq!(
        got,
        [
            "172.30.0.1/29",
            "172.30.0.3/29",
            "172.30.0.4/29",
            "172.30.0.5/29",
        ]
    );
    let err = ipam.allocate_address("n", ep("t9"), &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "network n has no free IPv4 address left (172.30.0.0/29)"
    );
}

#[test]
fn requested_addresses_table() {
    let mut ipam = Ipam::new(IpamConfig::default());
    ipam.allocate_network("n", &[SubnetRequest::explicit(cidr("10.1.0.0/24"))])
        .unwrap();
    ipam.allocate_address("n", ep("a"), &[ip("10.1.0.9")])
        .unwrap();
    type Check = fn(&IpamError) -> bool;
    let table: Vec<(&str, Check)> = vec![
        ("10.1.0.9", |e| matches!(e, IpamError::AddressInUse { .. })),
        ("10.1.0.0", |e| {
            matches!(e, IpamError::AddressReserved { .. })
        }),
        ("10.1.0.1", |e| {
            matches!(e, IpamError::AddressReserved { .. })
        }),
        ("10.1.0.255", |e| {
            matches!(e, IpamError::AddressReserved { .. })
        }),
        ("10.2.0.5", |e| {
            matches!(e, IpamError::AddressOutsideNetwork { .. })
        }),
    ];
    for (addr, check) in table {
        let err = ipam
            .allocate_address("n", ep("b"), &[ip(addr)])
            .unwrap_err();
        assert!(check(&err), "{addr}: {err}");
    }
    assert!(ipam.addresses_of("n", &ep("b")).is_empty());
    assert!(matches!(
        ipam.allocate_address("zz", ep("b"), &[]),
        Err(IpamError::UnknownNetwork(_))
    ));
    // Idempotent per owner.
    assert_eq!(
        ipam.allocate_address("n", ep("a"), &[]).unwrap(),
        vec![cidr("10.1.0.9/24")]
    );
}

#[test]
fn dual_stack_gets_one_address_per_family() {
    let cfg = IpamConfig::default()
        .with_pool(AddressPool::parse("fd00:5741::/48", 64).unwrap())
        .unwrap();
    let mut ipam = Ipam::new(cfg);
    let net = ipam
        .allocate_network(
            "n",
            &[
                SubnetRequest::from_pool(Family::V4),
                SubnetRequest::from_pool(Family::V6),
            ],
        )
        .unwrap();
    assert_eq!(net.subnets[1].subnet, cidr("fd00:5741::/64"));
    assert_eq!(net.subnets[1].gateway, ip("fd00:5741::1"));
    let a = ipam.allocate_address("n", ep("t"), &[]).unwrap();
    assert_eq!(a, vec![cidr("10.0.0.2/24"), cidr("fd00:5741::2/64")]);
    let b = ipam
        .allocate_address("n", Owner::Vip("s".into()), &[ip("fd00:5741::99")])
        .unwrap();
    assert_eq!(b, vec![cidr("10.0.0.3/24"), cidr("fd00:5741::99/64")]);
}

#[test]
fn released_addresses_are_not_reused_at_once() {
    let mut ipam = Ipam::new(IpamConfig::default());
    ipam.allocate_network("n", &[]).unwrap();
    let a = ipam.allocate_address("n", ep("a"), &[]).unwrap();
    ipam.release_owner("n", &ep("a"));
    let b = ipam.allocate_address("n", ep("b"), &[]).unwrap();
    assert_ne!(a, b, "the search resumes after the last address handed out");
    assert_eq!(ipam.release_address("n", &b[0].addr()), Some(ep("b")));
    assert_eq!(ipam.release_address("n", &b[0].addr()), None);
}

#[test]
fn state_survives_serde_and_restore_refuses_conflicts() {
    let mut ipam = Ipam::new(IpamConfig::default());
    ipam.allocate_network("n", &[]).unwrap();
    ipam.allocate_address("n", ep("a"), &[]).unwrap();
    let json = serde_json::to_string(ipam.state()).unwrap();
    let state: IpamState = serde_json::from_str(&json).unwrap();
    let restored = Ipam::restore(IpamConfig::default(), state.clone()).unwrap();
    assert_eq!(restored.state(), ipam.state());

    // A tampered state with an overlapping network is refused.
    let mut bad = state.clone();
    let dup = bad.networks["n"].clone();
    bad.networks.insert("m".into(), dup);
    assert!(matches!(
        Ipam::restore(IpamConfig::default(), bad),
        Err(IpamError::SubnetOverlaps { .. })
    ));
    // So is an address on the gateway.
    let mut bad = state;
    let n = bad.networks.get_mut("n").unwrap();
    n.subnets[0].addresses.insert(ip("10.0.0.1"), ep("x"));
    assert!(matches!(
        Ipam::restore(IpamConfig::default(), bad),
        Err(IpamError::AddressReserved { .. })
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(u8),
    Release(u8),
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..40).prop_map(Op::Alloc),
        2 => (0u8..40).prop_map(Op::Release),
        1 => Just(Op::Snapshot),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random allocate/release/snapshot sequences on a small subnet: no
    /// address is ever held twice, released addresses come back, and a
    /// serialized-and-restored allocator behaves exactly like the original.
    #[test]
    fn no_address_twice_release_reuses_restore_is_faithful(ops in proptest::collection::vec(op(), 1..120)) {
        let mut ipam = Ipam::new(IpamConfig::default());
        ipam.allocate_network("n", &[SubnetRequest::explicit(cidr("10.50.0.0/27"))]).unwrap();
        // 32 addresses minus network, broadcast and gateway.
        let capacity = 29;
        let mut held: std::collections::HashMap<u8, IpAddr> = Default::default();
        for op in ops {
            match op {
                Op::Alloc(o) => {
                    let r = ipam.allocate_address("n", ep(&o.to_string()), &[]);
                    match r {
                        Ok(a) => {
                            prop_assert_eq!(a.len(), 1);
                            let addr = a[0].addr();
                            if let Some(prev) = held.get(&o) {
                                prop_assert_eq!(*prev, addr, "idempotent per owner");
                            }
                            prop_assert!(!held.iter().any(|(k, v)| *k != o && *v == addr), "{} held twice", addr);
                            prop_assert!(ipam.network("n").unwrap().subnets[0].reservation(&addr).is_none());
                            held.insert(o, addr);
                        }
                        Err(IpamError::NetworkFull { .. }) => {
                            prop_assert_eq!(held.len(), capacity, "full only when every address is held");
                        }
                        Err(e) => prop_assert!(false, "unexpected {}", e),
                    }
                }
                Op::Release(o) => {
                    let freed = ipam.release_owner("n", &ep(&o.to_string()));
                    prop_assert_eq!(freed.first().copied(), held.remove(&o));
                }
                Op::Snapshot => {
                    let json = serde_json::to_string(ipam.state()).unwrap();
                    let back: IpamState = serde_json::from_str(&json).unwrap();
                    let restored = Ipam::restore(IpamConfig::default(), back).unwrap();
                    prop_assert_eq!(restored.state(), ipam.state());
                    ipam = restored;
                }
            }
            let distinct: HashSet<IpAddr> = held.values().copied().collect();
            prop_assert_eq!(distinct.len(), held.len());
        }
        // Everything released can be allocated again.
        for o in held.keys().copied().collect::<Vec<_>>() {
            ipam.release_owner("n", &ep(&o.to_string()));
        }
        for i in 0..capacity {
            let owner = ep(&format!("x{i}"));
            prop_assert!(ipam.allocate_address("n", owner, &[]).is_ok());
        }
    }

    /// Networks from the pool never overlap, whatever mix of explicit and
    /// pool subnets and releases came before.
    #[test]
    fn subnets_never_overlap(ops in proptest::collection::vec((0u8..3, 0u8..20, 0u8..64), 1..60)) {
        let pool = AddressPool::parse("10.0.0.0/16", 24).unwrap();
        let mut ipam = Ipam::new(IpamConfig::new(vec![pool], ExplicitSubnets::Anywhere).unwrap());
        for (kind, id, third) in ops {
            let id = id.to_string();
            match kind {
                0 => { let _ = ipam.allocate_network(&id, &[]); }
                1 => {
                    let req = SubnetRequest::explicit(cidr(&format!("10.0.{}.0/23", third * 2)));
                    let _ = ipam.allocate_network(&id, &[req]);
                }
                _ => { ipam.release_network(&id); }
            }
            let subnets: Vec<Cidr> = ipam.state().networks.values().flat_map(|n| n.subnets.iter().map(|s| s.subnet)).collect();
            for (i, a) in subnets.iter().enumerate() {
                for b in &subnets[i + 1..] {
                    prop_assert!(!a.overlaps(b), "{} overlaps {}", a, b);
                }
            }
        }
    }
}
