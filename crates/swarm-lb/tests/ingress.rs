//! The routing mesh between simulated nodes: a published port on a node
//! without a task reaches the task on another node over the ingress
//! network; host-mode publishing keeps the client's address.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use swarm_lb::nft::{NftBalancer, NftConfig};
use swarm_lb::{Backend, LoadBalancer, PortSpec, Protocol, PublishMode, Published, ServiceSpec};

fn published(id: &str, port: u16, mode: PublishMode) -> ServiceSpec {
    ServiceSpec {
        id: id.into(),
        vip: None,
        ports: vec![PortSpec {
            protocol: Protocol::Tcp,
            target_port: 8080,
            published: Some(Published { port, mode }),
        }],
    }
}

#[test]
fn mesh_reaches_a_task_on_another_node_and_host_mode_keeps_the_source() {
    if !can_run() {
        return;
    }
    // The ingress overlay, simulated by a bridge.
    let ingress = Ns::new("ingr");
    ingress.bridge();
    let node_a = Ns::new("nodea");
    let node_b = Ns::new("nodeb");
    ingress.attach(&node_a, "ingress0", "10.255.0.2/24");
    ingress.attach(&node_b, "ingress0", "10.255.0.3/24");
    node_a.forwarding();
    node_b.forwarding();
    // The task runs on node B; its default route is its node.
    let task = Ns::new("task");
    ingress.attach(&task, "eth0", "10.255.0.10/24");
    task.ip(&["route", "add", "default", "via", "10.255.0.3"]);
    tcp_server(&task, sa("10.255.0.10:8080"), "task");
    // Clients outside, each next to one node.
    let client_a = Ns::new("clia");
    node_a.link(
        "ext0",
        "192.168.77.1/24",
        &client_a,
        "eth0",
        "192.168.77.2/24",
    );
    let client_b = Ns::new("clib");
    node_b.link(
        "ext0",
        "192.168.78.1/24",
        &client_b,
        "eth0",
        "192.168.78.2/24",
    );

    // Every node publishes the mesh port; only B (which runs the task)
    // publishes the host-mode port.
    let lb_a = NftBalancer::open(NftConfig::new(node_a.netns())).unwrap();
    let lb_b = NftBalancer::open(NftConfig::new(node_b.netns())).unwrap();
    for lb in [&lb_a, &lb_b] {
        lb.ensure_service(&published("web-ingress", 30080, PublishMode::Ingress))
            .unwrap();
        lb.set_backend("web-ingress", Backend::new(ip("10.255.0.10")))
            .unwrap();
    }
    lb_b.ensure_service(&published("web-host", 30081, PublishMode::Host))
        .unwrap();
    lb_b.set_backend("web-host", Backend::new(ip("10.255.0.10")))
        .unwrap();

    // Node A has no task: the mesh carries the connection to node B's task,
    // source-NATed to node A's ingress address.
    let (name, peer) = greet(&client_a, sa("192.168.77.1:30080")).expect("mesh from node A");
    assert_eq!((name.as_str(), peer.as_str()), ("task", "10.255.0.2"));
    // Through node B too.
    let (name, peer) = greet(&client_b, sa("192.168.78.1:30080")).expect("mesh from node B");
    assert_eq!((name.as_str(), peer.as_str()), ("task", "10.255.0.3"));
    // Host mode on B: the task sees the client itself.
    let (name, peer) = greet(&client_b, sa("192.168.78.1:30081")).expect("host mode on node B");
    assert_eq!((name.as_str(), peer.as_str()), ("task", "192.168.78.2"));
    // Host mode is not published on A.
    assert!(greet(&client_a, sa("192.168.77.1:30081")).is_none());

    // Unpublishing closes the mesh port at once.
    lb_a.delete_service("web-ingress").unwrap();
    assert!(greet(&client_a, sa("192.168.77.1:30080")).is_none());
}
