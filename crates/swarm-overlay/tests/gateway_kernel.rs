//! The gateway bridge on a real kernel: outbound NAT and host-mode
//! published ports, on a simulated host with an "outside" machine on its
//! underlay.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{Lab, can_run, echo_server, links, reaches, stop_echo};
use swarm_overlay::driver::NetnsRef;
use swarm_overlay::gateway::{GatewayAttach, GatewayBridge, GatewayConfig, PortMapping, Protocol};
use swarm_overlay::netns::{Netns, NetnsGuard};

fn nft_tables(ns: &Netns) -> String {
    let out = ns
        .run(|| {
            Command::new("nft")
                .args(["list", "tables"])
                .output()
                .unwrap()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_bridge_nats_outbound_publishes_ports_and_cleans_up() {
    if !can_run("gateway") {
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!("SKIP gateway: needs the nft binary (Debian package nftables)");
        return;
    }
    let mut lab = Lab::new(1);
    lab.add_host(); // the outside machine
    let (node, outside) = (&lab.hosts[0], &lab.hosts[1]);
    let table = common::unique("gwt");
    let bridge = common::unique("gw");
    let cfg = GatewayConfig::builder()
        .bridge_name(bridge.clone())
        .table(table.clone())
        .host_netns(node.ns.path())
        .build()
        .unwrap();
    let gw = GatewayBridge::new(cfg.clone()).await.unwrap();
    assert!(!gw.is_active().await);

    let t1 = NetnsGuard::unique("ovt-t").unwrap();
    let t2 = NetnsGuard::unique("ovt-t").unwrap();
    let attach = |ns: &NetnsGuard, id: &str, ports: Vec<PortMapping>| GatewayAttach {
        endpoint_id: id.into(),
        netns: NetnsRef::Path(ns.path().to_path_buf()),
        ifname: "eth1".into(),
        ports,
    };
    let web = PortMapping {
        protocol: Protocol::Tcp,
        published: 8080,
        target: 80,
    };
    let e1 = gw.attach(&attach(&t1, "t1", vec![web])).await.unwrap();
    let e2 = gw.attach(&attach(&t2, "t2", vec![])).await.unwrap();
    assert!(gw.is_active().await);
    assert_eq!(e1.address.to_string(), "172.18.0.2/16");
    assert_eq!(e2.address.to_string(), "172.18.0.3/16");
    assert!(links(&node.ns).contains(&bridge));
    assert!(nft_tables(&node.ns).contains(&table));

    // Outbound: the outside machine sees the node's address, not the task's.
    let outside_addr = SocketAddr::new(IpAddr::V4(outside.addr), 7000);
    let listener = outside
        .ns
        .run(move || TcpListener::bind(outside_addr))
        .unwrap()
        .unwrap();
    let seen = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        peer.ip()
    });
    t1.run(move || {
        let mut s = TcpStream::connect_timeout(&outside_addr, Duration::from_secs(3)).unwrap();
        s.write_all(b"hi").unwrap();
    })
    .unwrap();
    assert_eq!(
        seen.join().unwrap(),
        IpAddr::V4(node.addr),
        "outbound traffic not masqueraded"
    );

    // A host-mode published port reaches the task from outside.
    let task_addr = SocketAddr::new(e1.address.addr(), 80);
    let h = echo_server(&t1, task_addr);
    let published = SocketAddr::new(IpAddr::V4(node.addr), 8080);
    assert!(
        reaches(&outside.ns, published, Duration::from_secs(3)),
        "published port 8080 does not reach the task"
    );
    // Tasks do not talk to each other over the gateway bridge.
    assert!(
        !reaches(&t2, task_addr, Duration::from_millis(400)),
        "inter-task traffic over the gateway bridge"
    );
    stop_echo(&t1, task_addr, h);

    // A port published twice is refused, and nothing changes.
    let err = gw.attach(&attach(&t2, "t2", vec![web])).await.unwrap_err();
    assert!(err.to_string().contains("already published"), "{err}");

    // A restarted agent finds the same bridge, tasks and ports.
    drop(gw);
    let gw = GatewayBridge::new(cfg).await.unwrap();
    let eps = gw.endpoints().await;
    assert_eq!(eps.len(), 2);
    assert_eq!(
        eps.iter().find(|e| e.endpoint_id == "t1").unwrap().ports,
        vec![web]
    );

    gw.detach("t1").await.unwrap();
    assert!(
        gw.is_active().await,
        "the bridge goes only with the last task"
    );
    assert_eq!(links(&t1), vec!["lo".to_string()]);
    gw.detach("t2").await.unwrap();
    gw.detach("t2").await.unwrap();
    assert!(!gw.is_active().await);
    assert!(!links(&node.ns).contains(&bridge), "bridge left");
    assert!(
        !nft_tables(&node.ns).contains(&table),
        "nftables table left"
    );
    assert_eq!(links(&node.ns), vec!["lo".to_string(), "eth0".to_string()]);
}
