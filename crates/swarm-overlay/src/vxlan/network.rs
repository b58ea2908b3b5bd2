//! Creating and deleting a network's namespace, bridge and VXLAN device.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::{LinkBridge, LinkUnspec, LinkVxlan};
use swarm_api::net::Cidr;

use super::{BRIDGE_NAME, NetInner, NetRt, VXLAN_NAME, VxlanDriver, alias};
use crate::driver::NetworkConfig;
use crate::error::{DriverError, Result};
use crate::netns::{self, Netns, NetnsError};
use crate::nl;

pub(super) async fn create(drv: &VxlanDriver, cfg: &NetworkConfig) -> Result<()> {
    cfg.validate()?;
    if !super::valid_id(&cfg.id) {
        return Err(DriverError::Invalid(format!(
            "network id {:?} must be 1 to 64 of [A-Za-z0-9_.-]",
            cfg.id
        )));
    }
    let _ops = drv.ops.lock().await;
    let mtu = cfg.mtu.unwrap_or(drv.cfg.mtu);
    let existing = drv.nets.lock().get(&cfg.id).cloned();
    if let Some(rt) = existing {
        if rt.config.vni == cfg.vni && rt.mtu == mtu && same_subnets(&rt.config, cfg) {
            return Ok(());
        }
        let endpoints = rt.inner.lock().endpoints.len();
        if endpoints > 0 {
            return Err(DriverError::NetworkConflict {
                network: cfg.id.clone(),
                reason: format!(
                    "VXLAN id {}, subnets or MTU differ and {endpoints} endpoint(s) are joined",
                    rt.config.vni
                ),
            });
        }
        // No endpoint: rebuild it with the new configuration.
        drv.settle_where(|_, net| net == cfg.id).await;
        remove_rt(drv, &rt).await?;
    }
    let holder = drv
        .nets
        .lock()
        .values()
        .find(|n| n.config.vni == cfg.vni)
        .map(|n| n.config.id.clone());
    if let Some(network) = holder {
        return Err(DriverError::VniInUse {
            vni: cfg.vni,
            network,
        });
    }
    let rt = build(drv, cfg, mtu).await?;
    drv.nets.lock().insert(cfg.id.clone(), Arc::new(rt));
    Ok(())
}

fn same_subnets(a: &NetworkConfig, b: &NetworkConfig) -> bool {
    let mut x = a.subnets.clone();
    let mut y = b.subnets.clone();
    x.sort_by_key(|s| (s.subnet, s.gateway));
    y.sort_by_key(|s| (s.subnet, s.gateway));
    x == y
}

/// Builds the namespace, bridge and VXLAN device; on failure removes
/// whatever it made.
async fn build(drv: &VxlanDriver, cfg: &NetworkConfig, mtu: u32) -> Result<NetRt> {
    let name = drv.cfg.netns_name(cfg.vni);
    let ns = match Netns::create(&drv.cfg.netns_dir, &name) {
        Ok(ns) => ns,
        Err(NetnsError::Exists(path)) => {
            return Err(DriverError::NameTaken {
                what: "network namespace",
                name,
                place: format!(
                    "at {} (not one this driver can account for)",
                    path.display()
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    match build_inside(drv, cfg, mtu, ns).await {
        Ok(rt) => Ok(rt),
        Err((e, h)) => {
            // The VXLAN device's socket lives in the host namespace: delete
            // the device explicitly rather than wait for namespace cleanup.
            if let Some(h) = h {
                let _ = nl::delete_link_by_name(&h, VXLAN_NAME).await;
            }
            let _ = netns::remove_named(drv.cfg.netns_dir.join(&name));
            Err(e)
        }
    }
}

type BuildError = (DriverError, Option<rtnetlink::Handle>);

async fn build_inside(
    drv: &VxlanDriver,
    cfg: &NetworkConfig,
    mtu: u32,
    ns: Netns,
) -> Result<NetRt, BuildError> {
    let h = nl::connect(Some(&ns)).await.map_err(|e| (e, None))?;
    let fail = |e: DriverError| (e, Some(h.clone()));
    let place = format!("network namespace {}", ns.name());
    super::bridge_nf::switch_off(&ns).await.map_err(fail)?;

    let bridge = LinkBridge::new(BRIDGE_NAME).mtu(mtu).up().build();
    h.link()
        .add(bridge)
        .execute()
        .await
        .map_err(nl::ctx(format!("creating bridge {BRIDGE_NAME} in {place}")))
        .map_err(fail)?;
    nl::set_alias(&h, BRIDGE_NAME, alias::network(&cfg.id))
        .await
        .map_err(fail)?;
    let br = index_of(&h, BRIDGE_NAME).await.map_err(fail)?;
    for s in &cfg.subnets {
        let gw = Cidr::new(s.gateway, s.subnet.prefix())
            .map_err(|e| fail(DriverError::Invalid(e.to_string())))?;
        nl::add_address(&h, br, &gw, BRIDGE_NAME)
            .await
            .map_err(fail)?;
    }

    // Created by the host's netlink socket with IFLA_NET_NS_FD: the device
    // lands in the network namespace, its UDP socket stays in the host's.
    let vx = vxlan_message(drv, cfg.vni, mtu, &ns);
    drv.host
        .link()
        .add(vx)
        .execute()
        .await
        .map_err(nl::ctx(format!(
            "creating {VXLAN_NAME} (VXLAN id {}, port {}, local {}) into {place}",
            cfg.vni, drv.cfg.port, drv.cfg.data_path_addr
        )))
        .map_err(fail)?;
    let vxlan = index_of(&h, VXLAN_NAME).await.map_err(fail)?;
    h.link()
        .set(
            LinkUnspec::new_with_index(vxlan)
                .controller(br)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl::ctx(format!(
            "attaching {VXLAN_NAME} to {BRIDGE_NAME} in {place}"
        )))
        .map_err(fail)?;

    Ok(NetRt {
        config: cfg.clone(),
        mtu,
        ns,
        h,
        bridge: br,
        vxlan,
        inner: parking_lot::Mutex::new(NetInner::default()),
        peer_lock: tokio::sync::Mutex::new(()),
    })
}

/// The VXLAN device of a network: no learning, ARP/ND proxy from the static
/// neighbour entries, the node's data-path address as source.
pub(super) fn vxlan_message(drv: &VxlanDriver, vni: u32, mtu: u32, ns: &Netns) -> LinkMessage {
    let mut b = LinkVxlan::new(VXLAN_NAME, vni)
        .port(drv.cfg.port)
        .learning(false)
        .proxy(true)
        .l2miss(false)
        .l3miss(false);
    b = match drv.cfg.data_path_addr {
        // RFC 7348: the outer UDP checksum SHOULD be zero over IPv4 (the
        // inner frame carries its own); IPv6 requires one.
        std::net::IpAddr::V4(a) => b.local(a).ttl(64).udp_csum(false),
        std::net::IpAddr::V6(a) => b.local6(a).ttl(64),
    };
    b.mtu(mtu).setns_by_fd(ns.as_fd().as_raw_fd()).build()
}

pub(super) async fn index_of(h: &rtnetlink::Handle, name: &str) -> Result<u32> {
    nl::link_by_name(h, name)
        .await?
        .map(|m| m.header.index)
        .ok_or_else(|| {
            DriverError::Invalid(format!("link {name} vanished right after its creation"))
        })
}

pub(super) async fn delete(drv: &VxlanDriver, id: &str) -> Result<()> {
    let _ops = drv.ops.lock().await;
    // Endpoints that left are still being removed from the kernel.
    drv.settle_where(|_, net| net == id).await;
    let Some(rt) = drv.nets.lock().get(id).cloned() else {
        return Ok(());
    };
    {
        let mut inner = rt.inner.lock();
        let count = inner.endpoints.len();
        if count > 0 {
            return Err(DriverError::NetworkInUse {
                network: id.to_string(),
                count,
            });
        }
        inner.deleted = true;
    }
    remove_rt(drv, &rt).await
}

/// Deletes the VXLAN device, the bridge and the namespace of a network and
/// forgets it.
pub(super) async fn remove_rt(drv: &VxlanDriver, rt: &NetRt) -> Result<()> {
    rt.inner.lock().deleted = true;
    let r1 = nl::delete_link(&rt.h, rt.vxlan, VXLAN_NAME).await;
    let r2 = nl::delete_link(&rt.h, rt.bridge, BRIDGE_NAME).await;
    let r3 = netns::remove_named(rt.ns.path()).map_err(DriverError::from);
    drv.nets.lock().remove(&rt.config.id);
    r1.and(r2).and(r3)
}
