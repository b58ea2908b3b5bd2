//! A conformance suite for [`NetworkDriver`] implementations: the contract
//! the agent relies on (idempotency, refusals, bookkeeping), checked through
//! the trait alone. Run it against a fresh driver:
//!
//! ```no_run
//! # async fn demo() {
//! use swarm_overlay::conformance::{SuiteConfig, TempNamespaces, run_all};
//! use swarm_overlay::noop::NoopDriver;
//!
//! let driver = NoopDriver::new();
//! let failures = run_all(&driver, &TempNamespaces::new("conf"), &SuiteConfig::default()).await;
//! assert!(failures.is_empty(), "{failures:#?}");
//! # }
//! ```
//!
//! Kernel effects (reachability, isolation, teardown) are driver-specific
//! and tested by the driver's own integration tests.

use std::any::Any;
use std::net::IpAddr;

use swarm_api::net::Cidr;

use crate::driver::{JoinRequest, NetnsRef, NetworkConfig, NetworkDriver, Peer, SubnetConfig};
use crate::error::DriverError;
use crate::mac::MacAddr;
use crate::netns::NetnsGuard;

/// Makes task namespaces for the suite.
pub trait TaskNamespaces: Send + Sync {
    /// A fresh namespace and a guard that removes it when dropped.
    fn create(&self) -> Result<(NetnsRef, Box<dyn Any + Send>), String>;
}

/// Real, uniquely named namespaces under `/run/netns` (needs root).
#[derive(Debug, Clone)]
pub struct TempNamespaces {
    prefix: String,
}

impl TempNamespaces {
    /// Namespaces named `<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> TempNamespaces {
        TempNamespaces {
            prefix: prefix.into(),
        }
    }
}

impl TaskNamespaces for TempNamespaces {
    fn create(&self) -> Result<(NetnsRef, Box<dyn Any + Send>), String> {
        let g = NetnsGuard::unique(&self.prefix).map_err(|e| e.to_string())?;
        Ok((NetnsRef::Path(g.path().to_path_buf()), Box::new(g)))
    }
}

/// Ids and VNIs the suite uses, so that it does not collide with anything
/// else the driver holds.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Prefix of network and endpoint ids.
    pub id_prefix: String,
    /// First of the 4 VNIs the suite uses.
    pub vni_base: u32,
    /// A VTEP address of a remote node for peers (family of the driver's
    /// underlay).
    pub remote_vtep: IpAddr,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            id_prefix: "conf".into(),
            vni_base: 60000,
            remote_vtep: IpAddr::from([192, 0, 2, 200]),
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn cidr(s: &str) -> Result<Cidr, String> {
    s.parse().map_err(|e| format!("{s}: {e}"))
}

fn net(cfg: &SuiteConfig, n: u32, third: u8) -> Result<NetworkConfig, String> {
    Ok(NetworkConfig {
        id: format!("{}-net{n}", cfg.id_prefix),
        vni: cfg.vni_base + n,
        subnets: vec![SubnetConfig {
            subnet: cidr(&format!("10.231.{third}.0/24"))?,
            gateway: IpAddr::from([10, 231, third, 1]),
        }],
        mtu: None,
    })
}

fn join_req(
    network: &NetworkConfig,
    id: &str,
    netns: &NetnsRef,
    addr: &str,
) -> Result<JoinRequest, String> {
    Ok(JoinRequest {
        network_id: network.id.clone(),
        endpoint_id: id.into(),
        netns: netns.clone(),
        ifname: "eth0".into(),
        addresses: vec![cidr(addr)?],
        default_route: false,
    })
}

/// Runs every check; returns the failures (empty when the driver conforms).
/// Each check cleans up after itself, also on failure where it can.
pub async fn run_all(
    driver: &dyn NetworkDriver,
    ns: &dyn TaskNamespaces,
    cfg: &SuiteConfig,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    macro_rules! run {
        ($name:ident) => {
            if let Err(message) = $name(driver, ns, cfg).await {
                failures.push(Failure {
                    check: stringify!($name),
                    message,
                });
            }
            cleanup(driver, cfg).await;
        };
    }
    run!(create_is_idempotent_and_validated);
    run!(vni_and_config_conflicts);
    run!(join_leave_and_idempotency);
    run!(join_refusals_leave_nothing);
    run!(delete_refused_while_in_use);
    run!(peers_are_tracked);
    failures
}

async fn cleanup(driver: &dyn NetworkDriver, cfg: &SuiteConfig) {
    if let Ok(state) = driver.state().await {
        for n in state
            .networks
            .iter()
            .filter(|n| n.config.id.starts_with(&cfg.id_prefix))
        {
            for e in &n.endpoints {
                let _ = driver.leave(&n.config.id, &e.endpoint_id).await;
            }
            let _ = driver.delete_network(&n.config.id).await;
        }
    }
}

async fn networks_of(
    driver: &dyn NetworkDriver,
    cfg: &SuiteConfig,
) -> Result<Vec<crate::driver::NetworkState>, String> {
    let state = driver.state().await.map_err(|e| format!("state: {e}"))?;
    Ok(state
        .networks
        .into_iter()
        .filter(|n| n.config.id.starts_with(&cfg.id_prefix))
        .collect())
}

async fn create_is_idempotent_and_validated(
    driver: &dyn NetworkDriver,
    _ns: &dyn TaskNamespaces,
    cfg: &SuiteConfig,
) -> Check {
    let n = net(cfg, 0, 10)?;
    driver
        .create_network(&n)
        .await
        .map_err(|e| format!("create: {e}"))?;
    driver
        .create_network(&n)
        .await
        .map_err(|e| format!("create again: {e}"))?;
    let nets = networks_of(driver, cfg).await?;
    ensure!(
        nets.len() == 1 && nets[0].config.vni == n.vni,
        "expected one network with VNI {}, got {nets:?}",
        n.vni
    );
    let mut bad = net(cfg, 1, 11)?;
    bad.vni = 0;
    let r = driver.create_network(&bad).await;
    ensure!(
        matches!(r, Err(DriverError::Invalid(_))),
        "VNI 0 accepted: {r:?}"
    );
    let mut bad = net(cfg, 1, 11)?;
    bad.subnets[0].gateway = IpAddr::from([10, 9, 9, 9]);
    let r = driver.create_network(&bad).await;
    ensure!(
        matches!(r, Err(DriverError::Invalid(_))),
        "gateway outside the subnet accepted: {r:?}"
    );
    ensure!(
        networks_of(driver, cfg).await?.len() == 1,
        "a refused network was recorded"
    );
    driver
        .delete_network(&n.id)
        .await
        .map_err(|e| format!("delete: {e}"))?;
    driver
        .delete_network(&n.id)
        .await
        .map_err(|e| format!("delete again: {e}"))?;
    ensure!(
        networks_of(driver, cfg).await?.is_empty(),
        "network left after delete"
    );
    Ok(())
}

async fn vni_and_config_conflicts(
    driver: &dyn NetworkDriver,
    ns: &dyn TaskNamespaces,
    cfg: &SuiteConfig,
) -> Check {
    let a = net(cfg, 0, 20)?;
    driver
        .create_network(&a)
        .await
        .map_err(|e| format!("create: {e}"))?;
    let mut b = net(cfg, 1, 21)?;
    b.vni = a.vni;
    let r = driver.create_network(&b).await;
    ensure!(
        matches!(r, Err(DriverError::VniInUse { vni, .. }) if vni == a.vni),
        "a VNI in use accepted: {r:?}"
    );
    // Reconfigured in place while no endpoint is joined.
    let mut a2 = a.clone();
    a2.subnets[0] = SubnetConfig {
        subnet: cidr("10.231.22.0/24")?,
        gateway: IpAddr::from([10, 231, 22, 1]),
    };
    driver
        .create_network(&a2)
        .await
        .map_err(|e| format!("reconfigure: {e}"))?;
    let nets = networks_of(driver, cfg).await?;
    ensure!(
        nets.len() == 1 && nets[0].config.subnets[0].subnet == a2.subnets[0].subnet,
        "reconfiguration not applied: {nets:?}"
    );
    // Refused while an endpoint is joined.
    let (task, _guard) = ns.create()?;
    driver
        .join(&join_req(
            &a2,
            &format!("{}-ep", cfg.id_prefix),
            &task,
            "10.231.22.5/24",
        )?)
        .await
        .map_err(|e| format!("join: {e}"))?;
    let r = driver.create_network(&a).await;
    ensure!(
        matches!(r, Err(DriverError::NetworkConflict { .. })),
        "reconfigured under an endpoint: {r:?}"
    );
    Ok(())
}

async fn join_leave_and_idempotency(
    driver: &dyn NetworkDriver,
    ns: &dyn TaskNamespaces,
    cfg: &SuiteConfig,
) -> Check {
    let n = net(cfg, 0, 30)?;
    let r = driver
        .join(&join_req(&n, "x", &ns.create()?.0, "10.231.30.5/24")?)
        .await;
    ensure!(
        matches!(r, Err(DriverError::UnknownNetwork(_))),
        "join on an unknown network: {r:?}"
    );
    driver
        .create_network(&n)
        .await
        .map_err(|e| format!("create: {e}"))?;
    let (task, _guard) = ns.create()?;
    let id = format!("{}-ep1", cfg.id_prefix);
    let req = join_req(&n, &id, &task, "10.231.30.5/24")?;
    let info = driver.join(&req).await.map_err(|e| format!("join: {e}"))?;
    ensure!(
        info.mac == MacAddr::from_ip(IpAddr::from([10, 231, 30, 5])),
        "MAC {} is not derived from the address",
        info.mac
    );
    ensure!(
        info.addresses == req.addresses && info.ifname == "eth0",
        "endpoint info {info:?}"
    );
    let again = driver
        .join(&req)
        .await
        .map_err(|e| format!("join again: {e}"))?;
    ensure!(again == info, "second join differs: {again:?}");
    let nets = networks_of(driver, cfg).await?;
    ensure!(
        nets[0].endpoints == vec![info.clone()],
        "state shows {:?}",
        nets[0].endpoints
    );
    let moved = join_req(&n, &id, &task, "10.231.30.6/24")?;
    let r = driver.join(&moved).await;
    ensure!(
        matches!(r, Err(DriverError::EndpointConflict { .. })),
        "rejoin with another address: {r:?}"
    );
    driver
        .leave(&n.id, &id)
        .await
        .map_err(|e| format!("leave: {e}"))?;
    driver
        .leave(&n.id, &id)
        .await
        .map_err(|e| format!("leave again: {e}"))?;
    ensure!(
        networks_of(driver, cfg).await?[0].endpoints.is_empty(),
        "endpoint left after leave"
    );
    // The same endpoint id can join again after leaving.
    driver
        .join(&moved)
        .await
        .map_err(|e| format!("join after leave: {e}"))?;
    Ok(())
}

async fn join_refusals_leave_nothing(
    driver: &dyn NetworkDriver,
    ns: &dyn TaskNamespaces,
    cfg: &SuiteConfig,
) -> Check {
    let n = net(cfg, 0, 40)?;
    driver
        .create_network(&n)
        .await
        .map_err(|e| format!("create: {e}"))?;
    let (task, _guard) = ns.create()?;
    let p = &cfg.id_prefix;
    let table: Vec<(&str, JoinRequest)> = vec![
        (
            "outside the subnet",
            join_req(&n, &format!("{p}-a"), &task, "10.99.0.5/24")?,
        ),
        (
            "the gateway",
            join_req(&n, &format!("{p}-b"), &task, "10.231.40.1/24")?,
        ),
        (
            "the broadcast address",
            join_req(&n, &format!("{p}-c"), &task, "10.231.40.255/24")?,
        ),
        (
            "a wrong prefix",
            join_req(&n, &format!("{p}-d"), &task, "10.231.40.7/16")?,
        ),
        (
            "no address",
            JoinRequest {
                addresses: vec![],
                ..join_req(&n, &format!("{p}-e"), &task, "10.231.40.8/24")?
            },
        ),
        (
            "a bad interface name",
            JoinRequest {
                ifname: "this-name-is-too-long".into(),
                ..join_req(&n, &format!("{p}-f"), &task, "10.231.40.9/24")?
            },
        ),
    ];
    for (what, req) in table {
        let r = driver.join(&req).await;
        ensure!(
            matches!(r, Err(DriverError::Invalid(_))),
            "join with {what}: {r:?}"
        );
    }
    driver
        .join(&join_req(&n, &format!("{p}-ok"), &task, "10.231.40.5/24")?)
        .await
        .map_err(|e| format!("join: {e}"))?;
    let (task2, _guard2) = ns.create()?;
    let r = driver
        .join(&join_req(
            &n,
            &format!("{p}-dup"),
            &task2,
            "10.231.40.5/24",
        )?)
        .await;
    ensure!(
        matches!(r, Err(DriverError::AddressInUse(_))),
        "an address in use accepted: {r:?}"
    );
    let nets = networks_of(driver, cfg).await?;
    ensure!(
        nets[0].endpoints.len() == 1,
        "refused joins were recorded: {:?}",
        nets[0].endpoints
    );
    Ok(())
}

async fn delete_refused_while_in_use(
    driver: &dyn NetworkDriver,
    ns: &dyn TaskNamespaces,
    cfg: &SuiteConfig,
) -> Check {
    let n = net(cfg, 0, 50)?;
    driver
        .create_network(&n)
        .await
        .map_err(|e| format!("create: {e}"))?;
    let (task, _guard) = ns.create()?;
    let id = format!("{}-ep", cfg.id_prefix);
    driver
        .join(&join_req(&n, &id, &task, "10.231.50.5/24")?)
        .await
        .map_err(|e| format!("join: {e}"))?;
    let r = driver.delete_network(&n.id).await;
    ensure!(
        matches!(r, Err(DriverError::NetworkInUse { count: 1, .. })),
        "deleted under an endpoint: {r:?}"
    );
    driver
        .leave(&n.id, &id)
        .await
        .map_err(|e| format!("leave: {e}"))?;
    driver
        .delete_network(&n.id)
        .await
        .map_err(|e| format!("delete: {e}"))?;
    let r = driver.leave(&n.id, &id).await;
    ensure!(
        matches!(r, Err(DriverError::UnknownNetwork(_))),
        "leave on a deleted network: {r:?}"
    );
    Ok(())
}

async fn peers_are_tracked(
    driver: &dyn NetworkDriver,
    _ns: &dyn TaskNamespaces,
    cfg: &SuiteConfig,
) -> Check {
    let n = net(cfg, 0, 60)?;
    driver
        .create_network(&n)
        .await
        .map_err(|e| format!("create: {e}"))?;
    let p1 = Peer::new(IpAddr::from([10, 231, 60, 7]), cfg.remote_vtep);
    driver
        .add_peer(&n.id, &p1)
        .await
        .map_err(|e| format!("add peer: {e}"))?;
    driver
        .add_peer(&n.id, &p1)
        .await
        .map_err(|e| format!("add peer again: {e}"))?;
    ensure!(
        networks_of(driver, cfg).await?[0].peers == vec![p1],
        "peers after add"
    );
    // The endpoint moved to another node.
    let other_vtep = match cfg.remote_vtep {
        IpAddr::V4(v4) => IpAddr::from([
            v4.octets()[0],
            v4.octets()[1],
            v4.octets()[2],
            v4.octets()[3].wrapping_add(1),
        ]),
        IpAddr::V6(v6) => IpAddr::from(u128::from(v6).wrapping_add(1).to_be_bytes()),
    };
    let moved = Peer::new(p1.ip, other_vtep);
    driver
        .add_peer(&n.id, &moved)
        .await
        .map_err(|e| format!("move peer: {e}"))?;
    ensure!(
        networks_of(driver, cfg).await?[0].peers == vec![moved],
        "peers after move"
    );
    // Removing the stale location is a no-op.
    driver
        .remove_peer(&n.id, &p1)
        .await
        .map_err(|e| format!("remove stale: {e}"))?;
    ensure!(
        networks_of(driver, cfg).await?[0].peers == vec![moved],
        "stale removal removed the new location"
    );
    let outside = Peer::new(IpAddr::from([10, 99, 0, 7]), cfg.remote_vtep);
    let r = driver.add_peer(&n.id, &outside).await;
    ensure!(
        matches!(r, Err(DriverError::Invalid(_))),
        "peer outside the subnets accepted: {r:?}"
    );
    driver
        .remove_peer(&n.id, &moved)
        .await
        .map_err(|e| format!("remove: {e}"))?;
    ensure!(
        networks_of(driver, cfg).await?[0].peers.is_empty(),
        "peer left after remove"
    );
    let r = driver.add_peer("no-such-network", &p1).await;
    ensure!(
        matches!(r, Err(DriverError::UnknownNetwork(_))),
        "peer on an unknown network: {r:?}"
    );
    Ok(())
}
