//! After a restart: find the networks, endpoints and peers a previous run
//! left in the kernel, adopt what is consistent, remove the rest.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkMessage};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use rtnetlink::{Handle, LinkUnspec};

use super::{BRIDGE_NAME, NetInner, NetRt, Slot, VXLAN_NAME, VxlanDriver, alias, network};
use crate::driver::{EndpointInfo, NetworkConfig, Peer, SubnetConfig};
use crate::error::{DriverError, Result};
use crate::mac::MacAddr;
use crate::netns::{self, Netns};
use crate::nl;

pub(super) async fn recover(drv: &VxlanDriver) -> Result<()> {
    let dir = &drv.cfg.netns_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(DriverError::Io {
                op: format!("listing {}", dir.display()),
                source,
            });
        }
    };
    let mut names: Vec<(u32, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            drv.cfg.vni_of_name(&name).map(|vni| (vni, name))
        })
        .collect();
    names.sort();
    for (vni, name) in names {
        let path = dir.join(&name);
        match adopt(drv, vni, &path).await {
            Ok(Some(rt)) => {
                let duplicate = drv.nets.lock().contains_key(&rt.config.id);
                if duplicate {
                    tracing::warn!(
                        "network {} found twice; removing {}",
                        rt.config.id,
                        path.display()
                    );
                    discard(&rt.h, &path).await;
                } else {
                    let (eps, peers) = {
                        let inner = rt.inner.lock();
                        (inner.endpoints.len(), inner.peers.len())
                    };
                    tracing::info!(
                        "recovered network {} (VXLAN id {vni}) with {eps} endpoint(s) and {peers} peer(s)",
                        rt.config.id
                    );
                    drv.nets.lock().insert(rt.config.id.clone(), Arc::new(rt));
                }
            }
            Ok(None) => {
                tracing::warn!("removing unusable overlay namespace {}", path.display());
                match Netns::open(&path) {
                    Ok(ns) => match nl::connect(Some(&ns)).await {
                        Ok(h) => discard(&h, &path).await,
                        Err(_) => {
                            let _ = netns::remove_named(&path);
                        }
                    },
                    Err(_) => {
                        let _ = netns::remove_named(&path);
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Deletes the VXLAN device (its socket is on the host) and the namespace.
async fn discard(h: &Handle, path: &std::path::Path) {
    let _ = nl::delete_link_by_name(h, VXLAN_NAME).await;
    let _ = netns::remove_named(path);
}

fn find<'a>(links: &'a [LinkMessage], name: &str) -> Option<&'a LinkMessage> {
    links.iter().find(|l| nl::link_name(l) == Some(name))
}

/// Reads one network namespace. `Ok(None)` when it is not a consistent
/// network of ours (half-built, tampered with).
async fn adopt(drv: &VxlanDriver, vni: u32, path: &std::path::Path) -> Result<Option<NetRt>> {
    let Ok(ns) = Netns::open(path) else {
        return Ok(None);
    };
    let Ok(h) = nl::connect(Some(&ns)).await else {
        return Ok(None);
    };
    let links = nl::all_links(&h).await?;
    let (Some(br), Some(vx)) = (find(&links, BRIDGE_NAME), find(&links, VXLAN_NAME)) else {
        return Ok(None);
    };
    let Some(id) = nl::link_alias(br).and_then(alias::parse_network) else {
        return Ok(None);
    };
    let Some(InfoData::Vxlan(info)) = nl::link_data(vx) else {
        return Ok(None);
    };
    if !info.contains(&InfoVxlan::Id(vni)) {
        return Ok(None);
    }
    let bridge = br.header.index;
    let mut vxlan = vx.header.index;
    let mtu = nl::link_mtu(br).unwrap_or(drv.cfg.mtu);
    let subnets: Vec<SubnetConfig> = nl::link_addresses(&h, bridge)
        .await?
        .into_iter()
        .filter(|a| !a.addr().is_ipv6() || !is_link_local(&a.addr()))
        .map(|a| SubnetConfig {
            subnet: a.network(),
            gateway: a.addr(),
        })
        .collect();
    let config = NetworkConfig {
        id,
        vni,
        subnets,
        mtu: Some(mtu),
    };
    if config.validate().is_err() {
        return Ok(None);
    }
    let peers = read_peers(&h, vxlan).await?;

    // A device made for another port or data-path address is rebuilt in
    // place, and its peers programmed again.
    let local_ok = match drv.cfg.data_path_addr {
        IpAddr::V4(a) => info.contains(&InfoVxlan::Local(a)),
        IpAddr::V6(a) => info.contains(&InfoVxlan::Local6(a)),
    };
    let rebuilt = !(info.contains(&InfoVxlan::Port(drv.cfg.port)) && local_ok);
    if rebuilt {
        tracing::info!(
            "rebuilding {VXLAN_NAME} of network {} for the new port or data-path address",
            config.id
        );
        nl::delete_link(&h, vxlan, VXLAN_NAME).await?;
        drv.host
            .link()
            .add(network::vxlan_message(drv, vni, mtu, &ns))
            .execute()
            .await
            .map_err(nl::ctx(format!(
                "re-creating {VXLAN_NAME} of network {}",
                config.id
            )))?;
        vxlan = network::index_of(&h, VXLAN_NAME).await?;
        h.link()
            .set(
                LinkUnspec::new_with_index(vxlan)
                    .controller(bridge)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(nl::ctx(format!(
                "attaching {VXLAN_NAME} of network {}",
                config.id
            )))?;
    }

    let mut endpoints = BTreeMap::new();
    for l in &links {
        if nl::link_kind(l) != Some(&InfoKind::Veth) {
            continue;
        }
        let name = nl::link_name(l).unwrap_or_default().to_string();
        let parsed = nl::link_alias(l).and_then(alias::parse_endpoint);
        match parsed {
            Some((ep, ifname, addresses)) if nl::link_controller(l) == Some(bridge) => {
                let first = addresses
                    .iter()
                    .find(|a| !a.is_ipv6())
                    .or(addresses.first())
                    .map(|a| a.addr());
                let Some(first) = first else { continue };
                let info = EndpointInfo {
                    network_id: config.id.clone(),
                    endpoint_id: ep.clone(),
                    ifname,
                    mac: MacAddr::from_ip(first),
                    addresses,
                };
                endpoints.insert(ep, Slot::Ready(info, name));
            }
            _ => {
                tracing::warn!("removing stray veth {name} of network {}", config.id);
                nl::delete_link(&h, l.header.index, &name).await?;
            }
        }
    }

    let rt = NetRt {
        config,
        mtu,
        ns,
        h,
        bridge,
        vxlan,
        inner: parking_lot::Mutex::new(NetInner {
            deleted: false,
            endpoints,
            peers: BTreeMap::new(),
        }),
        peer_lock: tokio::sync::Mutex::new(()),
    };
    let mut kept = BTreeMap::new();
    for p in peers {
        if rebuilt && let Err(e) = super::peer::reprogram(&rt, &p).await {
            tracing::warn!(
                "peer {} of network {} not restored: {e}",
                p.ip,
                rt.config.id
            );
            continue;
        }
        kept.insert(p.ip, p);
    }
    rt.inner.lock().peers = kept;
    Ok(Some(rt))
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

fn nd_addr(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        // FDB entries (family AF_BRIDGE) carry the VTEP as raw bytes.
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

fn dest(m: &NeighbourMessage) -> Option<IpAddr> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(d) => nd_addr(d),
        _ => None,
    })
}

fn lladdr(m: &NeighbourMessage) -> Option<MacAddr> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => MacAddr::from_slice(b),
        _ => None,
    })
}

/// Peers from the static neighbour entries joined with the FDB entries of
/// the VXLAN device.
async fn read_peers(h: &Handle, vxlan: u32) -> Result<Vec<Peer>> {
    let mut vteps: HashMap<MacAddr, IpAddr> = HashMap::new();
    let fdb: Vec<NeighbourMessage> = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(nl::ctx("listing FDB entries"))?;
    for m in fdb.iter().filter(|m| m.header.ifindex == vxlan) {
        if let (Some(mac), Some(vtep)) = (lladdr(m), dest(m)) {
            vteps.insert(mac, vtep);
        }
    }
    let mut peers = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let neigh: Vec<NeighbourMessage> = h
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .map_err(nl::ctx("listing neighbours"))?;
        for m in neigh.iter().filter(|m| m.header.ifindex == vxlan) {
            if let (Some(ip), Some(mac)) = (dest(m), lladdr(m))
                && let Some(vtep) = vteps.get(&mac)
            {
                peers.push(Peer {
                    ip,
                    mac,
                    vtep: *vtep,
                });
            }
        }
    }
    Ok(peers)
}
