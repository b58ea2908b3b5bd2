//! Every dataplane of the crate passes the shared state-semantics suite.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use swarm_lb::conformance::check_state_semantics;
use swarm_lb::nft::{NftBalancer, NftConfig};
use swarm_lb::proxy::ProxyBalancer;

const VIPS: [&str; 2] = ["10.203.0.250", "10.203.0.251"];
const BACKENDS: [&str; 3] = ["10.203.0.2", "10.203.0.3", "10.203.0.4"];

#[test]
fn nftables_conforms() {
    if !can_run() {
        return;
    }
    let ns = Ns::new("conf");
    let lb = NftBalancer::open(NftConfig::new(ns.netns())).unwrap();
    check_state_semantics(&lb, VIPS.map(ip), BACKENDS.map(ip)).unwrap();
}

#[test]
fn userspace_proxy_conforms() {
    if !can_run() {
        return;
    }
    let ns = Ns::new("confp");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lb = ProxyBalancer::start(ns.netns(), rt.handle().clone());
    check_state_semantics(&lb, VIPS.map(ip), BACKENDS.map(ip)).unwrap();
}

#[test]
fn ipvs_conforms_where_the_kernel_has_it() {
    if !can_run() {
        return;
    }
    if !swarm_lb::ipvs::available() {
        eprintln!(
            "skipping IPVS conformance: /proc/net/ip_vs does not exist (no IPVS in this kernel)"
        );
        return;
    }
    let ns = Ns::new("confi");
    let lb = swarm_lb::ipvs::IpvsBalancer::open(ns.netns()).unwrap();
    check_state_semantics(&lb, VIPS.map(ip), BACKENDS.map(ip)).unwrap();
}
