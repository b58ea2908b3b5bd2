//! The VXLAN driver on a real kernel: simulated hosts (namespaces on an
//! underlay bridge of the test's own), tasks in namespaces on each.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{
    Lab, PrefixSweeper, can_run, capture, echo_server, eventually, links, netns_names, reaches,
    stop_echo, udp_port_bound, vxlan_packets,
};
use swarm_overlay::driver::{
    EndpointInfo, JoinRequest, NetnsRef, NetworkConfig, NetworkDriver, Peer, SubnetConfig,
};
use swarm_overlay::netns::NetnsGuard;
use swarm_overlay::peers::PeerTable;
use swarm_overlay::vxlan::{VxlanConfig, VxlanDriver};

const SHORT: Duration = Duration::from_millis(400);
const LONG: Duration = Duration::from_secs(3);

fn net(id: &str, vni: u32, subnet: &str, gw: &str) -> NetworkConfig {
    NetworkConfig {
        id: id.into(),
        vni,
        subnets: vec![SubnetConfig {
            subnet: subnet.parse().unwrap(),
            gateway: gw.parse().unwrap(),
        }],
        mtu: None,
    }
}

/// MACs of the static FDB entries on `vxlan0` in a network namespace.
fn fdb_macs(ns: &std::path::Path) -> Vec<String> {
    let name = ns.file_name().unwrap().to_string_lossy().into_owned();
    let out = std::process::Command::new("bridge")
        .args(["-n", &name, "fdb", "show", "dev", "vxlan0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" dst "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

async fn driver(host: &common::Host) -> VxlanDriver {
    let cfg = VxlanConfig::builder(IpAddr::V4(host.addr))
        .prefix(host.prefix.clone())
        .host_netns(host.ns.path())
        .build()
        .unwrap();
    VxlanDriver::new(cfg).await.unwrap()
}

struct Task {
    ns: NetnsGuard,
    info: EndpointInfo,
    vtep: IpAddr,
}

impl Task {
    fn ip(&self) -> IpAddr {
        self.info.addresses[0].addr()
    }

    fn peer(&self) -> Peer {
        Peer::new(self.ip(), self.vtep)
    }
}

async fn task(drv: &VxlanDriver, net: &NetworkConfig, id: &str, addr: &str) -> Task {
    let ns = NetnsGuard::unique("ovt-t").unwrap();
    let req = JoinRequest {
        network_id: net.id.clone(),
        endpoint_id: id.into(),
        netns: NetnsRef::Path(ns.path().to_path_buf()),
        ifname: "eth0".into(),
        addresses: vec![addr.parse().unwrap()],
        default_route: true,
    };
    let info = drv.join(&req).await.unwrap();
    Task {
        ns,
        info,
        vtep: drv.config().data_path_addr(),
    }
}

/// Every endpoint of `tasks` as a peer, fed through each driver's peer
/// table (the table leaves each driver's own endpoints out).
async fn sync_peers(
    drivers: &[&VxlanDriver],
    tables: &mut [PeerTable],
    net: &str,
    tasks: &[&Task],
) {
    let all: Vec<Peer> = tasks.iter().map(|t| t.peer()).collect();
    for (d, t) in drivers.iter().zip(tables.iter_mut()) {
        t.sync(*d, net, all.clone()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_reach_each_other_over_vxlan_and_teardown_leaves_nothing() {
    if !can_run("three_hosts") {
        return;
    }
    let lab = Lab::new(3);
    let _sweep: Vec<PrefixSweeper> = lab
        .hosts
        .iter()
        .map(|h| PrefixSweeper(h.prefix.clone()))
        .collect();
    let d: Vec<VxlanDriver> = futures::future::join_all(lab.hosts.iter().map(driver)).await;
    let n = net("net1", 4321, "10.77.0.0/24", "10.77.0.1");
    for x in &d {
        x.create_network(&n).await.unwrap();
    }
    let t1 = task(&d[0], &n, "task1", "10.77.0.2/24").await;
    let t2 = task(&d[1], &n, "task2", "10.77.0.3/24").await;
    let t3 = task(&d[2], &n, "task3", "10.77.0.4/24").await;
    let mut tables: Vec<PeerTable> = d
        .iter()
        .map(|x| PeerTable::new(x.config().data_path_addr()))
        .collect();
    let drivers: Vec<&VxlanDriver> = d.iter().collect();
    sync_peers(&drivers, &mut tables, &n.id, &[&t1, &t2, &t3]).await;

    // The VXLAN socket lives in each simulated host, not in the root namespace.
    for h in &lab.hosts {
        assert!(
            udp_port_bound(&h.ns, 4789),
            "no VXLAN socket in host {}",
            h.ns.name()
        );
    }

    let port = 5001;
    let srv: Vec<_> = [&t1, &t2, &t3]
        .iter()
        .map(|t| {
            (
                SocketAddr::new(t.ip(), port),
                echo_server(&t.ns, SocketAddr::new(t.ip(), port)),
            )
        })
        .collect();
    let cap = capture(&lab.hosts[1].ns);
    for (from, to) in [(&t1, 1), (&t2, 2), (&t3, 0), (&t1, 2)] {
        assert!(
            reaches(&from.ns, srv[to].0, LONG),
            "{} cannot reach {}",
            from.ip(),
            srv[to].0
        );
    }
    // Traffic to task2 crossed host2's underlay as VXLAN on UDP 4789 with
    // the network's VNI, carrying the tasks' own addresses.
    let seen = vxlan_packets(&cap, 4789, Duration::from_millis(300));
    assert!(
        seen.iter().any(|s| s.vni == n.vni
            && s.outer_src == IpAddr::V4(lab.hosts[0].addr)
            && s.outer_dst == IpAddr::V4(lab.hosts[1].addr)
            && s.inner_src == Some(t1.ip())
            && s.inner_dst == Some(t2.ip())),
        "no VXLAN packet task1 -> task2 seen on host2's underlay: {seen:?}"
    );

    // A removed peer becomes unreachable (its FDB entry is gone), and comes
    // back when re-added.
    let ovl1 = d[0].network_netns(&n.id).unwrap();
    assert!(
        fdb_macs(&ovl1).contains(&t2.info.mac.to_string()),
        "no FDB entry for task2 on host1"
    );
    tables[0]
        .sync(&d[0], &n.id, vec![t1.peer(), t3.peer()])
        .await
        .unwrap();
    assert!(
        !fdb_macs(&ovl1).contains(&t2.info.mac.to_string()),
        "task2's FDB entry outlived its removal"
    );
    assert!(fdb_macs(&ovl1).contains(&t3.info.mac.to_string()));
    assert!(
        !reaches(&t1.ns, srv[1].0, SHORT),
        "task2 still reachable from host1 after its peer was removed"
    );
    assert!(reaches(&t1.ns, srv[2].0, LONG), "task3 lost with task2");
    tables[0]
        .sync(&d[0], &n.id, vec![t1.peer(), t2.peer(), t3.peer()])
        .await
        .unwrap();
    assert!(
        eventually(LONG, || reaches(&t1.ns, srv[1].0, SHORT)),
        "task2 not reachable after re-adding it"
    );

    for ((addr, h), t) in srv.into_iter().zip([&t1, &t2, &t3]) {
        stop_echo(&t.ns, addr, h);
    }
    // Teardown: leave, delete; nothing remains on any host.
    for (x, t) in d.iter().zip([&t1, &t2, &t3]) {
        x.leave(&n.id, &t.info.endpoint_id).await.unwrap();
        x.settle().await;
        assert_eq!(
            links(&t.ns),
            vec!["lo".to_string()],
            "the task's interface outlived leave"
        );
        x.delete_network(&n.id).await.unwrap();
        assert!(x.state().await.unwrap().networks.is_empty());
    }
    for h in &lab.hosts {
        assert!(
            netns_names(&h.prefix).is_empty(),
            "overlay namespace left: {:?}",
            netns_names(&h.prefix)
        );
        assert_eq!(
            links(&h.ns),
            vec!["lo".to_string(), "eth0".to_string()],
            "links left on {}",
            h.ns.name()
        );
        assert!(
            !udp_port_bound(&h.ns, 4789),
            "VXLAN socket left on {}",
            h.ns.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_overlays_are_isolated() {
    if !can_run("isolation") {
        return;
    }
    let lab = Lab::new(2);
    let _sweep: Vec<PrefixSweeper> = lab
        .hosts
        .iter()
        .map(|h| PrefixSweeper(h.prefix.clone()))
        .collect();
    let d: Vec<VxlanDriver> = futures::future::join_all(lab.hosts.iter().map(driver)).await;
    // The same subnet on both networks: only the VNI keeps them apart.
    let a = net("neta", 5001, "10.88.0.0/24", "10.88.0.1");
    let b = net("netb", 5002, "10.88.0.0/24", "10.88.0.1");
    for x in &d {
        x.create_network(&a).await.unwrap();
        x.create_network(&b).await.unwrap();
    }
    let a1 = task(&d[0], &a, "a1", "10.88.0.2/24").await;
    let a2 = task(&d[1], &a, "a2", "10.88.0.3/24").await;
    let b1 = task(&d[0], &b, "b1", "10.88.0.4/24").await;
    let b2 = task(&d[1], &b, "b2", "10.88.0.5/24").await;
    let mut ta: Vec<PeerTable> = d
        .iter()
        .map(|x| PeerTable::new(x.config().data_path_addr()))
        .collect();
    let mut tb = ta.clone();
    let drivers: Vec<&VxlanDriver> = d.iter().collect();
    sync_peers(&drivers, &mut ta, &a.id, &[&a1, &a2]).await;
    sync_peers(&drivers, &mut tb, &b.id, &[&b1, &b2]).await;

    let port = 5002;
    let sa2 = SocketAddr::new(a2.ip(), port);
    let sb2 = SocketAddr::new(b2.ip(), port);
    let ha = echo_server(&a2.ns, sa2);
    let hb = echo_server(&b2.ns, sb2);
    assert!(reaches(&a1.ns, sa2, LONG), "a1 -> a2 within network A");
    assert!(reaches(&b1.ns, sb2, LONG), "b1 -> b2 within network B");
    assert!(
        !reaches(&a1.ns, sb2, SHORT),
        "a1 (network A) reached b2 (network B)"
    );
    assert!(
        !reaches(&b1.ns, sa2, SHORT),
        "b1 (network B) reached a2 (network A)"
    );
    // Even with b2 wrongly programmed as a peer of network A on host1, the
    // frames carry A's VNI and host2 delivers them to A's bridge only.
    d[0].add_peer(&a.id, &b2.peer()).await.unwrap();
    assert!(
        !reaches(&a1.ns, sb2, SHORT),
        "VNI did not isolate the networks"
    );
    stop_echo(&a2.ns, sa2, ha);
    stop_echo(&b2.ns, sb2, hb);
    for (x, ts) in d.iter().zip([[&a1, &b1], [&a2, &b2]]) {
        for t in ts {
            x.leave(&t.info.network_id, &t.info.endpoint_id)
                .await
                .unwrap();
        }
        x.delete_network(&a.id).await.unwrap();
        x.delete_network(&b.id).await.unwrap();
    }
    for h in &lab.hosts {
        assert!(netns_names(&h.prefix).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_driver_recovers_and_reconciles() {
    if !can_run("restart") {
        return;
    }
    let lab = Lab::new(2);
    let h = &lab.hosts[0];
    let _sweep = PrefixSweeper(h.prefix.clone());
    let n = net("netr", 4400, "10.66.0.0/24", "10.66.0.1");
    let remote = Peer::new("10.66.0.9".parse().unwrap(), IpAddr::V4(lab.hosts[1].addr));
    let (t, before) = {
        let d = driver(h).await;
        d.create_network(&n).await.unwrap();
        let t = task(&d, &n, "taskr", "10.66.0.2/24").await;
        d.add_peer(&n.id, &remote).await.unwrap();
        (t, d.state().await.unwrap())
        // The driver is dropped here, as when the agent stops.
    };
    // A leftover of a crashed creation: an empty namespace with our prefix.
    let junk = format!("{}-9999", h.prefix);
    let _junk = swarm_overlay::netns::Netns::create("/run/netns", &junk).unwrap();

    let d = driver(h).await;
    let after = d.state().await.unwrap();
    assert_eq!(after.networks.len(), 1);
    assert_eq!(
        after.networks[0].endpoints, before.networks[0].endpoints,
        "endpoints recovered"
    );
    assert_eq!(
        after.networks[0].peers,
        vec![remote],
        "peers recovered from FDB + neighbours"
    );
    assert_eq!(after.networks[0].config.subnets, n.subnets);
    assert!(
        !netns_names(&h.prefix).contains(&junk),
        "the unusable namespace was removed"
    );
    // The agent re-declares what it wants: all no-ops.
    d.create_network(&n).await.unwrap();
    let again = JoinRequest {
        network_id: n.id.clone(),
        endpoint_id: "taskr".into(),
        netns: NetnsRef::Path(t.ns.path().to_path_buf()),
        ifname: "eth0".into(),
        addresses: t.info.addresses.clone(),
        default_route: true,
    };
    assert_eq!(d.join(&again).await.unwrap(), t.info);
    d.add_peer(&n.id, &remote).await.unwrap();
    assert_eq!(
        d.state().await.unwrap(),
        after,
        "re-declaring changed nothing"
    );
    // And cleans up.
    d.remove_peer(&n.id, &remote).await.unwrap();
    d.leave(&n.id, "taskr").await.unwrap();
    d.delete_network(&n.id).await.unwrap();
    assert!(netns_names(&h.prefix).is_empty());

    // A restart on another port rebuilds the VXLAN device in place.
    let d2 = driver(h).await;
    d2.create_network(&n).await.unwrap();
    drop(d2);
    let cfg = VxlanConfig::builder(IpAddr::V4(h.addr))
        .prefix(h.prefix.clone())
        .host_netns(h.ns.path())
        .port(4790)
        .build()
        .unwrap();
    let d3 = VxlanDriver::new(cfg).await.unwrap();
    assert!(
        udp_port_bound(&h.ns, 4790) && !udp_port_bound(&h.ns, 4789),
        "VXLAN device not rebuilt on the new port"
    );
    d3.delete_network(&n.id).await.unwrap();
    assert!(!udp_port_bound(&h.ns, 4790));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_leaves_nothing() {
    use swarm_overlay::error::DriverError;
    if !can_run("bad_input") {
        return;
    }
    let lab = Lab::new(1);
    let h = &lab.hosts[0];
    let _sweep = PrefixSweeper(h.prefix.clone());
    let d = driver(h).await;
    let n = net("netb", 4500, "10.55.0.0/24", "10.55.0.1");
    d.create_network(&n).await.unwrap();
    let ovl = swarm_overlay::netns::Netns::open(d.network_netns(&n.id).unwrap()).unwrap();
    let base_links = links(&ovl);
    // Bridged frames skip iptables in the network's namespace (where the
    // kernel has br_netfilter at all; a fresh namespace starts with 1).
    for switch in ["iptables", "ip6tables", "arptables"] {
        let path = format!("/proc/sys/net/bridge/bridge-nf-call-{switch}");
        if std::path::Path::new(&path).exists() {
            let v = ovl.run(move || std::fs::read_to_string(path)).unwrap();
            assert_eq!(
                v.unwrap().trim(),
                "0",
                "bridge-nf-call-{switch} in the network's namespace"
            );
        }
    }

    // A VNI in use by another network.
    let other = net("netc", 4500, "10.56.0.0/24", "10.56.0.1");
    let err = d.create_network(&other).await.unwrap_err();
    assert!(
        matches!(err, DriverError::VniInUse { vni: 4500, .. }),
        "{err}"
    );
    assert_eq!(
        netns_names(&h.prefix).len(),
        1,
        "a namespace was made for the refused network"
    );

    // The interface name is already taken in the task's namespace.
    let t = NetnsGuard::unique("ovt-t").unwrap();
    common::ip(&["-n", &t.name(), "link", "add", "eth0", "type", "bridge"]);
    let req = JoinRequest {
        network_id: n.id.clone(),
        endpoint_id: "taken".into(),
        netns: NetnsRef::Path(t.path().to_path_buf()),
        ifname: "eth0".into(),
        addresses: vec!["10.55.0.7/24".parse().unwrap()],
        default_route: false,
    };
    let err = d.join(&req).await.unwrap_err();
    assert!(
        matches!(&err, DriverError::NameTaken { name, .. } if name == "eth0"),
        "{err}"
    );
    assert!(
        err.to_string().contains("task's network namespace"),
        "{err}"
    );
    assert_eq!(
        links(&ovl),
        base_links,
        "a veth was left in the network namespace"
    );
    assert_eq!(links(&t), vec!["lo".to_string(), "eth0".to_string()]);

    // A task namespace that does not exist.
    let gone = JoinRequest {
        endpoint_id: "gone".into(),
        netns: NetnsRef::Path("/run/netns/ovt-no-such-namespace".into()),
        ..req.clone()
    };
    assert!(matches!(d.join(&gone).await, Err(DriverError::Netns(_))));
    // Addresses outside the network, bad names: refused before any kernel work.
    let outside = JoinRequest {
        endpoint_id: "outside".into(),
        ifname: "eth1".into(),
        addresses: vec!["10.99.0.7/24".parse().unwrap()],
        ..req.clone()
    };
    assert!(matches!(
        d.join(&outside).await,
        Err(DriverError::Invalid(_))
    ));
    let bad_id = JoinRequest {
        endpoint_id: "has space".into(),
        ifname: "eth1".into(),
        ..req.clone()
    };
    assert!(matches!(
        d.join(&bad_id).await,
        Err(DriverError::Invalid(_))
    ));
    assert_eq!(links(&ovl), base_links);
    assert_eq!(links(&t), vec!["lo".to_string(), "eth0".to_string()]);
    assert!(d.state().await.unwrap().networks[0].endpoints.is_empty());

    // A namespace name taken by something that is not a network of ours
    // (a file that is not a namespace) is reported, not overwritten.
    let squat = format!("/run/netns/{}-4600", h.prefix);
    drop(ovl);
    d.delete_network(&n.id).await.unwrap();
    let d2 = {
        drop(d);
        std::fs::write(&squat, b"").unwrap();
        driver(h).await
    };
    // Recovery removed the unusable name; creating works.
    assert!(!std::path::Path::new(&squat).exists());
    d2.create_network(&net("netd", 4600, "10.57.0.0/24", "10.57.0.1"))
        .await
        .unwrap();
    d2.delete_network("netd").await.unwrap();
    // A name squatted while the driver runs: reported, left alone.
    let squat = format!("/run/netns/{}-4700", h.prefix);
    std::fs::write(&squat, b"").unwrap();
    let err = d2
        .create_network(&net("nete", 4700, "10.58.0.0/24", "10.58.0.1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            DriverError::NameTaken {
                what: "network namespace",
                ..
            }
        ),
        "{err}"
    );
    assert!(std::path::Path::new(&squat).exists());
    std::fs::remove_file(&squat).unwrap();
    assert!(d2.state().await.unwrap().networks.is_empty());
    assert!(netns_names(&h.prefix).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_driver_passes_the_conformance_suite() {
    use swarm_overlay::conformance::{SuiteConfig, TempNamespaces, run_all};
    if !can_run("conformance") {
        return;
    }
    let lab = Lab::new(1);
    let _sweep = PrefixSweeper(lab.hosts[0].prefix.clone());
    let d = driver(&lab.hosts[0]).await;
    let failures = run_all(&d, &TempNamespaces::new("ovt-c"), &SuiteConfig::default()).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        netns_names(&lab.hosts[0].prefix).is_empty(),
        "the suite left networks behind"
    );
}
