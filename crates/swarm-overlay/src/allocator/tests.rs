//! The allocator driven by API objects, and its rebuild after a leader
//! change.

use std::collections::HashSet;

use swarm_api::v1;

use super::*;

fn network(id: &str) -> v1::Network {
    v1::Network {
        id: id.into(),
        spec: Some(v1::NetworkSpec {
            annotations: Some(v1::Annotations {
                name: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(id: &str, nets: &[&v1::Network]) -> v1::Task {
    v1::Task {
        id: id.into(),
        networks: nets
            .iter()
            .map(|n| v1::NetworkAttachment {
                network: Some((*n).clone()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn networks_get_subnets_gateways_and_vnis() {
    let mut a = NetworkAllocator::new(IpamConfig::default());
    let mut n1 = network("n1");
    let mut n2 = network("n2");
    a.allocate_network(&mut n1).unwrap();
    a.allocate_network(&mut n2).unwrap();
    let c1 = &n1.ipam.as_ref().unwrap().configs[0];
    assert_eq!(
        (c1.subnet.as_str(), c1.gateway.as_str()),
        ("10.0.0.0/24", "10.0.0.1")
    );
    assert_eq!(n2.ipam.as_ref().unwrap().configs[0].subnet, "10.0.1.0/24");
    assert_eq!(network_vni(&n1).unwrap(), Some(4096));
    assert_eq!(network_vni(&n2).unwrap(), Some(4097));
    assert_eq!(n1.driver_state.as_ref().unwrap().name, "overlay");
    assert!(matches!(
        a.allocate_network(&mut n1),
        Err(AllocError::AlreadyAllocated(_))
    ));
    // A released network's VNI and subnet are free again.
    assert!(a.release_network("n1"));
    let mut n3 = network("n3");
    a.allocate_network(&mut n3).unwrap();
    assert_eq!(network_vni(&n3).unwrap(), Some(4096));
    assert_eq!(n3.ipam.as_ref().unwrap().configs[0].subnet, "10.0.0.0/24");
}

#[test]
fn spec_options_and_refusals_allocate_nothing() {
    let mut a = NetworkAllocator::new(IpamConfig::default());
    let mut n = network("n");
    let spec = n.spec.as_mut().unwrap();
    spec.driver_config = Some(v1::Driver {
        name: "overlay".into(),
        options: [(VNI_OPTION.to_string(), "5000".to_string())].into(),
    });
    spec.ipam = Some(v1::IpamOptions {
        driver: None,
        configs: vec![v1::IpamConfig {
            subnet: "192.168.7.0/24".into(),
            gateway: "192.168.7.254".into(),
            ..Default::default()
        }],
    });
    a.allocate_network(&mut n).unwrap();
    assert_eq!(a.vni_of("n"), Some(5000));
    assert_eq!(n.ipam.as_ref().unwrap().configs[0].gateway, "192.168.7.254");

    // Same VNI again: refused, and the subnet it asked for is not taken.
    let mut m = n.clone();
    m.id = "m".into();
    m.spec.as_mut().unwrap().ipam = None;
    let before = a.state();
    assert!(matches!(
        a.allocate_network(&mut m),
        Err(AllocError::Vni(VniError::InUse(5000)))
    ));
    assert_eq!(a.state(), before);
    // Overlapping subnet: refused, and the VNI it took is given back.
    let mut o = network("o");
    o.spec.as_mut().unwrap().ipam = n.spec.as_ref().unwrap().ipam.clone();
    assert!(matches!(
        a.allocate_network(&mut o),
        Err(AllocError::Ipam(IpamError::SubnetOverlaps { .. }))
    ));
    assert_eq!(a.state(), before);
    let mut bad = network("bad");
    bad.spec.as_mut().unwrap().driver_config = Some(v1::Driver {
        name: "overlay".into(),
        options: [(VNI_OPTION.to_string(), "x".to_string())].into(),
    });
    assert!(matches!(
        a.allocate_network(&mut bad),
        Err(AllocError::BadOption { .. })
    ));
    // Host networks get neither subnet nor VNI.
    let mut host = network("host");
    host.spec.as_mut().unwrap().driver_config = Some(v1::Driver {
        name: "host".into(),
        options: Default::default(),
    });
    a.allocate_network(&mut host).unwrap();
    assert!(host.ipam.is_none() && a.vni_of("host").is_none());
}

#[test]
fn tasks_services_and_their_release() {
    let mut a = NetworkAllocator::new(IpamConfig::default());
    let mut n = network("n");
    a.allocate_network(&mut n).unwrap();
    let mut t = task("t1", &[&n]);
    t.spec = Some(v1::TaskSpec {
        networks: vec![v1::NetworkAttachmentConfig {
            target: "n".into(),
            addresses: vec!["10.0.0.50".into()],
            ..Default::default()
        }],
        ..Default::default()
    });
    a.allocate_task(&mut t).unwrap();
    assert_eq!(t.networks[0].addresses, vec!["10.0.0.50/24".to_string()]);
    let mut t2 = task("t2", &[&n]);
    a.allocate_task(&mut t2).unwrap();
    assert_eq!(t2.networks[0].addresses, vec!["10.0.0.2/24".to_string()]);
    let mut s = v1::Service {
        id: "s1".into(),
        ..Default::default()
    };
    a.allocate_service(&mut s, &["n".to_string()]).unwrap();
    let vip = s.endpoint.as_ref().unwrap().virtual_ips[0].clone();
    assert_eq!(
        (vip.network_id.as_str(), vip.addr.as_str()),
        ("n", "10.0.0.3/24")
    );
    // Idempotent, then the network removed from the service releases its VIP.
    a.allocate_service(&mut s, &["n".to_string()]).unwrap();
    assert_eq!(s.endpoint.as_ref().unwrap().virtual_ips, vec![vip]);
    a.allocate_service(&mut s, &[]).unwrap();
    assert!(s.endpoint.as_ref().unwrap().virtual_ips.is_empty());
    a.release_task(&t);
    let mut t3 = task("t3", &[&n]);
    t3.spec = t.spec.clone();
    a.allocate_task(&mut t3).unwrap();
    assert_eq!(
        t3.networks[0].addresses,
        vec!["10.0.0.50/24".to_string()],
        "released address reusable"
    );
    // An attachment to a network that was never allocated fails and leaves
    // the task's other attachments unallocated.
    let ghost = network("ghost");
    let mut t4 = task("t4", &[&n, &ghost]);
    assert!(a.allocate_task(&mut t4).is_err());
    assert!(t4.networks.iter().all(|x| x.addresses.is_empty()));
    assert!(
        a.ipam()
            .addresses_of("n", &Owner::Endpoint("t4".into()))
            .is_empty()
    );
}

/// A leader allocates; a new leader rebuilds from the stored objects and
/// hands out nothing twice.
#[test]
fn a_new_leader_rebuilds_and_never_hands_out_twice() {
    let mut old = NetworkAllocator::new(IpamConfig::default());
    let mut nets = Vec::new();
    for i in 0..3 {
        let mut n = network(&format!("n{i}"));
        old.allocate_network(&mut n).unwrap();
        nets.push(n);
    }
    let mut tasks = Vec::new();
    for i in 0..20 {
        let mut t = task(&format!("t{i}"), &[&nets[i % 3]]);
        old.allocate_task(&mut t).unwrap();
        tasks.push(t);
    }
    let mut svc = v1::Service {
        id: "s".into(),
        ..Default::default()
    };
    old.allocate_service(&mut svc, &["n0".to_string(), "n1".to_string()])
        .unwrap();
    let mut node = v1::Node {
        id: "node1".into(),
        attachments: vec![v1::NetworkAttachment {
            network: Some(nets[2].clone()),
            addresses: Vec::new(),
            ..Default::default()
        }],
        ..Default::default()
    };
    node.attachments[0].addresses = old.allocate_endpoint("n2", "node1", &[]).unwrap();

    let (mut new, conflicts) = NetworkAllocator::rebuild(
        IpamConfig::default(),
        &nets,
        &[svc.clone()],
        &tasks,
        &[node.clone()],
    );
    assert!(conflicts.is_empty(), "{conflicts:?}");
    assert_eq!(new.state(), old.state(), "the rebuilt state is the old one");

    let mut taken: HashSet<String> = tasks
        .iter()
        .flat_map(|t| t.networks[0].addresses.clone())
        .collect();
    taken.extend(
        svc.endpoint
            .as_ref()
            .unwrap()
            .virtual_ips
            .iter()
            .map(|v| v.addr.clone()),
    );
    taken.extend(node.attachments[0].addresses.clone());
    for i in 0..30 {
        let mut t = task(&format!("new{i}"), &[&nets[i % 3]]);
        new.allocate_task(&mut t).unwrap();
        let a = t.networks[0].addresses[0].clone();
        assert!(taken.insert(a.clone()), "{a} handed out twice");
    }
    let mut n = network("n9");
    new.allocate_network(&mut n).unwrap();
    assert_eq!(network_vni(&n).unwrap(), Some(4099));
    assert_eq!(n.ipam.as_ref().unwrap().configs[0].subnet, "10.0.3.0/24");

    // Persisted state round-trips too.
    let json = serde_json::to_string(&new.state()).unwrap();
    let back = NetworkAllocator::restore(
        IpamConfig::default(),
        VniAllocator::default(),
        serde_json::from_str(&json).unwrap(),
    )
    .unwrap();
    assert_eq!(back.state(), new.state());
}

#[test]
fn rebuild_reports_conflicts_and_keeps_the_rest() {
    let mut a = NetworkAllocator::new(IpamConfig::default());
    let mut n = network("n");
    a.allocate_network(&mut n).unwrap();
    let mut t1 = task("t1", &[&n]);
    a.allocate_task(&mut t1).unwrap();
    // A second task claiming the same address (a bug or a bad restore).
    let mut t2 = task("t2", &[&n]);
    t2.networks[0].addresses = t1.networks[0].addresses.clone();
    // A network overlapping the first.
    let mut dup = n.clone();
    dup.id = "dup".into();
    dup.driver_state = None;
    let (b, conflicts) =
        NetworkAllocator::rebuild(IpamConfig::default(), &[n, dup], &[], &[t1, t2], &[]);
    let objects: Vec<&str> = conflicts.iter().map(|c| c.object.as_str()).collect();
    assert_eq!(objects, ["network dup", "task t2"]);
    assert!(matches!(
        conflicts[1].error,
        AllocError::Ipam(IpamError::AddressInUse { .. })
    ));
    assert_eq!(
        b.ipam()
            .addresses_of("n", &Owner::Endpoint("t1".into()))
            .len(),
        1
    );
}
