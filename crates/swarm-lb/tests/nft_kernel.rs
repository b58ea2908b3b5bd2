//! The nftables balancer on the real kernel: a client namespace reaches
//! VIPs balanced over backend namespaces on a shared bridge.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::BTreeMap;

use common::*;
use swarm_lb::nft::{NftBalancer, NftConfig};
use swarm_lb::{Backend, LoadBalancer, ServiceSpec, ServiceState};

struct Net {
    _hub: Ns,
    client: Ns,
    _backends: Vec<Ns>,
}

/// Hub bridge; client 10.200.0.1; backends 10.200.0.2.. serving TCP :8080
/// (named b0, b1, ...).
fn net(n: usize) -> Net {
    let hub = Ns::new("hub");
    hub.bridge();
    let client = Ns::new("cli");
    hub.attach(&client, "eth0", "10.200.0.1/24");
    let mut backends = Vec::new();
    for i in 0..n {
        let b = Ns::new("be");
        let addr = format!("10.200.0.{}", i + 2);
        hub.attach(&b, "eth0", &format!("{addr}/24"));
        tcp_server(&b, sa(&format!("{addr}:8080")), &format!("b{i}"));
        udp_server(&b, sa(&format!("{addr}:5353")), &format!("u{i}"));
        backends.push(b);
    }
    Net {
        _hub: hub,
        client,
        _backends: backends,
    }
}

fn be(i: usize) -> Backend {
    Backend::new(ip(&format!("10.200.0.{}", i + 2)))
}

fn spread(ns: &Ns, vip: &str, n: usize) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let (name, _) = greet(ns, sa(vip)).expect("connection through the VIP");
        *m.entry(name).or_insert(0) += 1;
    }
    m
}

#[test]
fn vip_balances_removes_and_drains() {
    if !can_run() {
        return;
    }
    let net = net(3);
    let lb = NftBalancer::open(NftConfig::new(net.client.netns())).unwrap();
    let vip = ip("10.200.0.250");
    lb.ensure_service(&ServiceSpec::vip("web", vip)).unwrap();
    lb.set_backend("web", be(0)).unwrap();
    lb.set_backend("web", be(1)).unwrap();
    // idempotent
    lb.ensure_service(&ServiceSpec::vip("web", vip)).unwrap();
    lb.set_backend("web", be(1)).unwrap();

    // any port of the VIP reaches the same port on a backend
    let m = spread(&net.client, "10.200.0.250:8080", 20);
    assert_eq!(
        m.keys().cloned().collect::<Vec<_>>(),
        vec!["b0", "b1"],
        "{m:?}"
    );
    assert!(m.values().all(|&c| c >= 5), "unbalanced: {m:?}");

    // removal: no new connection reaches b0
    lb.remove_backend("web", be(0).addr).unwrap();
    let m = spread(&net.client, "10.200.0.250:8080", 10);
    assert_eq!(m.keys().cloned().collect::<Vec<_>>(), vec!["b1"], "{m:?}");

    // drain: an established connection to b1 goes on, new ones go to b2
    let held = connect(&net.client, sa("10.200.0.250:8080")).unwrap();
    let (name, _, mut held) = read_greeting(held).unwrap();
    assert_eq!(name, "b1");
    lb.set_backend("web", be(2)).unwrap();
    lb.drain_backend("web", be(1).addr).unwrap();
    let m = spread(&net.client, "10.200.0.250:8080", 10);
    assert_eq!(m.keys().cloned().collect::<Vec<_>>(), vec!["b2"], "{m:?}");
    use std::io::{Read, Write};
    held.write_all(b"still there").unwrap();
    let mut buf = [0u8; 11];
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still there");

    // weights: 3:1
    lb.set_backend(
        "web",
        Backend {
            addr: be(0).addr,
            weight: 3,
        },
    )
    .unwrap();
    let m = spread(&net.client, "10.200.0.250:8080", 40);
    assert!(m["b0"] > m["b2"], "weights ignored: {m:?}");
    assert!(!m.contains_key("b1"), "drained backend got traffic: {m:?}");

    // delete: the VIP no longer leads anywhere
    lb.delete_service("web").unwrap();
    lb.delete_service("web").unwrap();
    assert!(greet(&net.client, sa("10.200.0.250:8080")).is_none());
    assert!(lb.list().unwrap().is_empty());
}

fn nft_json(ns: &Ns, args: &[&str]) -> serde_json::Value {
    let mut v = vec!["nft", "-j"];
    v.extend_from_slice(args);
    let out = ns.exec(&v);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Elements of the VIP map whose key starts with `vip`, as JSON text.
fn vip_elements(ns: &Ns, vip: &str) -> Vec<String> {
    let v = nft_json(ns, &["list", "map", "ip", "swarm-lb", "vip"]);
    let mut out: Vec<String> = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("map"))
        .flat_map(|m| m["elem"].as_array().cloned().unwrap_or_default())
        .filter(|e| e[0]["concat"][0] == vip)
        .map(|e| e.to_string())
        .collect();
    out.sort();
    out
}

/// (chain, rule handle) of every rule of the table.
fn rule_handles(ns: &Ns) -> Vec<(String, u64)> {
    let v = nft_json(ns, &["list", "chains", "ip"]);
    let chains: Vec<String> = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("chain"))
        .filter(|c| c["table"] == "swarm-lb")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let mut out = Vec::new();
    for c in chains {
        let v = nft_json(ns, &["list", "chain", "ip", "swarm-lb", &c]);
        for r in v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("rule"))
        {
            out.push((c.clone(), r["handle"].as_u64().unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn one_service_change_leaves_the_others_untouched() {
    if !can_run() {
        return;
    }
    let net = net(2);
    let lb = NftBalancer::open(NftConfig::new(net.client.netns())).unwrap();
    for (id, vip, b) in [("a", "10.200.0.240", 0), ("b", "10.200.0.241", 1)] {
        lb.ensure_service(&ServiceSpec::vip(id, ip(vip))).unwrap();
        lb.set_backend(id, be(b)).unwrap();
    }
    let b_before = vip_elements(&net.client, "10.200.0.241");
    let rules_before = rule_handles(&net.client);
    assert_eq!(b_before.len(), 64);

    lb.set_backend("a", be(1)).unwrap();
    lb.remove_backend("a", be(0).addr).unwrap();
    lb.ensure_service(&ServiceSpec::vip("c", ip("10.200.0.242")))
        .unwrap();
    lb.set_backend("c", be(0)).unwrap();
    lb.delete_service("c").unwrap();

    assert_eq!(
        vip_elements(&net.client, "10.200.0.241"),
        b_before,
        "service b's elements changed"
    );
    assert_eq!(
        rule_handles(&net.client),
        rules_before,
        "rules were rewritten"
    );
    // and both still work
    assert_eq!(greet(&net.client, sa("10.200.0.241:8080")).unwrap().0, "b1");
    assert_eq!(greet(&net.client, sa("10.200.0.240:8080")).unwrap().0, "b1");
}

#[test]
fn restart_adopts_the_table_and_reconciles() {
    if !can_run() {
        return;
    }
    let net = net(2);
    let desired = vec![
        ServiceState::new(ServiceSpec::vip("a", ip("10.200.0.240"))).with_backends([be(0)]),
        ServiceState::new(ServiceSpec::vip("b", ip("10.200.0.241"))).with_backends([be(1)]),
    ];
    {
        let lb = NftBalancer::open(NftConfig::new(net.client.netns())).unwrap();
        lb.reconcile(&desired).unwrap();
        // a table owned by someone else in the same namespace
        let out = net
            .client
            .exec(&["nft", "add", "table", "ip", "overlay-owned"]);
        assert!(out.status.success());
    }
    // a new process: the table survives, reconcile converges
    let lb = NftBalancer::open(NftConfig::new(net.client.netns())).unwrap();
    assert_eq!(greet(&net.client, sa("10.200.0.241:8080")).unwrap().0, "b1");
    let mut next = desired.clone();
    next.remove(0);
    next[0] = next[0].clone().with_backends([be(0)]);
    lb.reconcile(&next).unwrap();
    lb.reconcile(&next).unwrap();
    assert_eq!(lb.list().unwrap(), next);
    assert!(greet(&net.client, sa("10.200.0.240:8080")).is_none());
    let m = spread(&net.client, "10.200.0.241:8080", 10);
    assert_eq!(m.len(), 2, "{m:?}");
    let out = net
        .client
        .exec(&["nft", "list", "table", "ip", "overlay-owned"]);
    assert!(out.status.success(), "another owner's table was removed");
}

#[test]
fn bad_input_changes_nothing() {
    if !can_run() {
        return;
    }
    let net = net(1);
    let lb = NftBalancer::open(NftConfig::new(net.client.netns())).unwrap();
    lb.ensure_service(&ServiceSpec::vip("a", ip("10.200.0.240")))
        .unwrap();
    assert!(
        lb.ensure_service(&ServiceSpec::vip("b", ip("10.200.0.240")))
            .is_err(),
        "VIP reused"
    );
    assert!(
        lb.ensure_service(&ServiceSpec::vip("bad id!", ip("10.200.0.243")))
            .is_err()
    );
    assert!(lb.set_backend("nope", be(0)).is_err());
    assert!(
        lb.set_backend("a", Backend::new(ip("fd00::2"))).is_err(),
        "IPv6 backend for an IPv4 VIP"
    );
    assert!(lb.drain_backend("a", be(0).addr).is_err());
    assert_eq!(lb.list().unwrap().len(), 1);
}

#[test]
fn ipv6_vip_balances_in_its_own_table() {
    if !can_run() {
        return;
    }
    let hub = Ns::new("hub6");
    hub.bridge();
    let client = Ns::new("cli6");
    hub.attach(&client, "eth0", "fd00:200::1/64");
    let mut backends = Vec::new();
    for i in 0..2 {
        let b = Ns::new("be6");
        let addr = format!("fd00:200::{}", i + 2);
        hub.attach(&b, "eth0", &format!("{addr}/64"));
        tcp_server(&b, sa(&format!("[{addr}]:8080")), &format!("b{i}"));
        backends.push(b);
    }
    let lb = NftBalancer::open(NftConfig::new(client.netns())).unwrap();
    let v4 = ServiceState::new(ServiceSpec::vip("v4", ip("10.200.0.250"))).with_backends([be(0)]);
    let v6 = ServiceState::new(ServiceSpec::vip("v6", ip("fd00:200::250"))).with_backends([
        Backend::new(ip("fd00:200::2")),
        Backend::new(ip("fd00:200::3")),
    ]);
    lb.set_service(&v4).unwrap();
    lb.set_service(&v6).unwrap();
    let m = spread(&client, "[fd00:200::250]:8080", 20);
    assert_eq!(
        m.keys().cloned().collect::<Vec<_>>(),
        vec!["b0", "b1"],
        "{m:?}"
    );
    lb.remove_backend("v6", ip("fd00:200::2")).unwrap();
    let m = spread(&client, "[fd00:200::250]:8080", 6);
    assert_eq!(m.keys().cloned().collect::<Vec<_>>(), vec!["b1"], "{m:?}");
    // the ip6 table holds the VIP, the ip table does not
    let out = client.exec(&["nft", "list", "map", "ip6", "swarm-lb", "vip"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("fd00:200::250"));
    let out = client.exec(&["nft", "list", "map", "ip", "swarm-lb", "vip"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("fd00"));
    let dump = lb.dataplane().dump().unwrap();
    assert!(
        dump.contains("table ip swarm-lb") && dump.contains("table ip6 swarm-lb"),
        "{dump}"
    );
}

#[test]
fn removing_a_backend_moves_its_pinned_udp_flows() {
    if !can_run() {
        return;
    }
    let net = net(2);
    let lb = NftBalancer::open(NftConfig::new(net.client.netns())).unwrap();
    lb.ensure_service(&ServiceSpec::vip("dns", ip("10.200.0.230")))
        .unwrap();
    lb.set_backend("dns", be(0)).unwrap();
    lb.set_backend("dns", be(1)).unwrap();
    // one client socket, one flow: pinned to one backend
    let sock = net
        .client
        .netns()
        .run(|| std::net::UdpSocket::bind("10.200.0.1:40000"))
        .unwrap()
        .unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let ask = || {
        sock.send_to(b"q", sa("10.200.0.230:5353")).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = ask();
    assert_eq!(ask(), first, "a UDP flow sticks to its backend");
    let (gone, other) = if first == "u0" { (0, "u1") } else { (1, "u0") };
    lb.remove_backend("dns", be(gone).addr).unwrap();
    // The removed backend's server still runs: only the forgotten flow
    // explains the move. Flows are forgotten just after the change, off
    // its path: poll with a generous deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = ask();
        if got == other {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still pinned to {got}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn resync_repairs_a_table_flushed_behind_its_back() {
    if !can_run() {
        return;
    }
    let net = net(2);
    let lb = NftBalancer::open(NftConfig::new(net.client.netns())).unwrap();
    lb.set_service(
        &ServiceState::new(ServiceSpec::vip("a", ip("10.200.0.240"))).with_backends([be(0)]),
    )
    .unwrap();
    let out = net
        .client
        .exec(&["nft", "flush", "map", "ip", "swarm-lb", "vip"]);
    assert!(out.status.success());
    assert!(
        greet(&net.client, sa("10.200.0.240:8080")).is_none(),
        "flushed"
    );
    // the next change cannot delete elements that are gone
    assert!(matches!(
        lb.set_backend("a", be(1)),
        Err(swarm_lb::LbError::Netlink { .. })
    ));
    lb.resync().unwrap();
    lb.set_backend("a", be(1)).unwrap();
    let m = spread(&net.client, "10.200.0.240:8080", 10);
    assert_eq!(m.len(), 2, "{m:?}");
}
