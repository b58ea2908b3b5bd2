//! The userspace proxy in a client namespace: TCP and UDP balanced over
//! backend namespaces, removal and draining.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::BTreeMap;

use common::*;
use swarm_lb::proxy::ProxyBalancer;
use swarm_lb::{Backend, LoadBalancer, PortSpec, Protocol, PublishMode, Published, ServiceSpec};

#[test]
fn proxies_tcp_and_udp_over_backends() {
    if !can_run() {
        return;
    }
    let hub = Ns::new("phub");
    hub.bridge();
    let client = Ns::new("pcli");
    hub.attach(&client, "eth0", "10.201.0.1/24");
    // the VIP routes to the client namespace itself, where the proxy listens
    client.ip(&["addr", "add", "10.201.0.250/32", "dev", "lo"]);
    let mut backends = Vec::new();
    for i in 0..2 {
        let b = Ns::new("pbe");
        let addr = format!("10.201.0.{}", i + 2);
        hub.attach(&b, "eth0", &format!("{addr}/24"));
        tcp_server(&b, sa(&format!("{addr}:8080")), &format!("b{i}"));
        udp_server(&b, sa(&format!("{addr}:5353")), &format!("u{i}"));
        backends.push(b);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lb = ProxyBalancer::start(client.netns(), rt.handle().clone());
    let spec = ServiceSpec {
        id: "web".into(),
        vip: Some(ip("10.201.0.250")),
        ports: vec![
            PortSpec {
                protocol: Protocol::Tcp,
                target_port: 8080,
                published: None,
            },
            PortSpec {
                protocol: Protocol::Udp,
                target_port: 5353,
                published: None,
            },
            PortSpec {
                protocol: Protocol::Tcp,
                target_port: 8080,
                published: Some(Published {
                    port: 30090,
                    mode: PublishMode::Host,
                }),
            },
        ],
    };
    {
        let lb2 = &lb;
        lb2.ensure_service(&spec).unwrap();
        lb2.ensure_service(&spec).unwrap();
        lb2.set_backend("web", Backend::new(ip("10.201.0.2")))
            .unwrap();
        lb2.set_backend("web", Backend::new(ip("10.201.0.3")))
            .unwrap();
        let mut tcp = BTreeMap::new();
        let mut udp = BTreeMap::new();
        for _ in 0..10 {
            let (n, peer) = greet(&client, sa("10.201.0.250:8080")).expect("tcp through the proxy");
            assert_eq!(peer, "10.201.0.1", "backends see the proxy");
            *tcp.entry(n).or_insert(0) += 1;
            let u = udp_ask(&client, sa("10.201.0.250:5353")).expect("udp through the proxy");
            *udp.entry(u).or_insert(0) += 1;
        }
        assert_eq!(tcp.len(), 2, "{tcp:?}");
        assert_eq!(udp.len(), 2, "{udp:?}");
        // the published port listens on the namespace's own addresses
        let (n, _) = greet(&client, sa("10.201.0.1:30090")).expect("published port");
        assert!(n == "b0" || n == "b1", "{n}");

        lb2.drain_backend("web", ip("10.201.0.2")).unwrap();
        for _ in 0..6 {
            assert_eq!(greet(&client, sa("10.201.0.250:8080")).unwrap().0, "b1");
            assert_eq!(udp_ask(&client, sa("10.201.0.250:5353")).unwrap(), "u1");
        }
        lb2.remove_backend("web", ip("10.201.0.3")).unwrap();
        // only a draining backend is left: nothing new is accepted
        assert!(greet(&client, sa("10.201.0.250:8080")).is_none());
        lb2.delete_service("web").unwrap();
        assert!(lb2.list().unwrap().is_empty());
    }
    drop(lb);
    drop(rt);
    drop(backends);
}
