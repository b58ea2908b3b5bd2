//! IPVS on the kernel, where the kernel has it. The encoding is checked
//! byte for byte by the unit tests in src/ipvs/tests.rs on every kernel.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use swarm_lb::ipvs::{self, IpvsBalancer};
use swarm_lb::{Backend, LoadBalancer, PortSpec, Protocol, ServiceSpec};

#[test]
fn ipvs_balances_where_the_kernel_has_it() {
    if !can_run() {
        return;
    }
    if !ipvs::available() {
        eprintln!(
            "skipping the IPVS kernel step: /proc/net/ip_vs does not exist (this kernel has no IPVS); \
             the message encoding is tested against hand-assembled bytes instead"
        );
        let ns = Ns::new("ipvs");
        // Opening says clearly why it cannot work.
        let err = IpvsBalancer::open(ns.netns()).err().expect("no IPVS here");
        assert!(err.to_string().contains("IPVS"), "{err}");
        return;
    }
    let hub = Ns::new("ihub");
    hub.bridge();
    let client = Ns::new("icli");
    hub.attach(&client, "eth0", "10.202.0.1/24");
    let mut backends = Vec::new();
    for i in 0..2 {
        let b = Ns::new("ibe");
        let addr = format!("10.202.0.{}", i + 2);
        hub.attach(&b, "eth0", &format!("{addr}/24"));
        tcp_server(&b, sa(&format!("{addr}:8080")), &format!("b{i}"));
        backends.push(b);
    }
    client.ip(&["addr", "add", "10.202.0.250/32", "dev", "lo"]);
    let lb = IpvsBalancer::open(client.netns()).unwrap();
    lb.ensure_service(&ServiceSpec {
        id: "web".into(),
        vip: Some(ip("10.202.0.250")),
        ports: vec![PortSpec {
            protocol: Protocol::Tcp,
            target_port: 8080,
            published: None,
        }],
    })
    .unwrap();
    lb.set_backend("web", Backend::new(ip("10.202.0.2")))
        .unwrap();
    lb.set_backend("web", Backend::new(ip("10.202.0.3")))
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.insert(greet(&client, sa("10.202.0.250:8080")).unwrap().0);
    }
    assert_eq!(seen.len(), 2);
    lb.remove_backend("web", ip("10.202.0.2")).unwrap();
    for _ in 0..5 {
        assert_eq!(greet(&client, sa("10.202.0.250:8080")).unwrap().0, "b1");
    }
    assert_eq!(lb.dataplane().kernel_services().unwrap(), 1);
}
