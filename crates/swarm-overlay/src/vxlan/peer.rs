//! Remote endpoints: a static neighbour entry (IP -> MAC) and a static FDB
//! entry (MAC -> VTEP) on the VXLAN device per peer.

use std::net::IpAddr;

use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};

use super::{NetRt, VxlanDriver};
use crate::driver::Peer;
use crate::error::{DriverError, Result};
use crate::mac::MacAddr;
use crate::nl;

pub(super) async fn add(drv: &VxlanDriver, network_id: &str, peer: &Peer) -> Result<()> {
    let rt = drv.net(network_id)?;
    if drv.is_local_vtep(&peer.vtep) {
        // An endpoint of this node: reached through the bridge.
        return Ok(());
    }
    check(drv, &rt, peer)?;
    let _g = rt.peer_lock.lock().await;
    let old = rt.inner.lock().peers.get(&peer.ip).copied();
    if old == Some(*peer) {
        return Ok(());
    }
    program(&rt, peer).await?;
    if let Some(old) = old
        && old.mac != peer.mac
        && !mac_shared(&rt, &old, &peer.ip)
    {
        let _ = delete_fdb(&rt, &old.mac, &old.vtep).await;
    }
    rt.inner.lock().peers.insert(peer.ip, *peer);
    Ok(())
}

fn check(drv: &VxlanDriver, rt: &NetRt, peer: &Peer) -> Result<()> {
    if rt.config.subnet_of(&peer.ip).is_none() {
        return Err(DriverError::Invalid(format!(
            "peer {} is outside the subnets of network {}",
            peer.ip, rt.config.id
        )));
    }
    if peer.vtep.is_unspecified()
        || peer.vtep.is_multicast()
        || peer.vtep.is_ipv6() != drv.cfg.data_path_addr.is_ipv6()
    {
        return Err(DriverError::Invalid(format!(
            "peer {}: {} is not a usable VTEP address for this node's underlay",
            peer.ip, peer.vtep
        )));
    }
    if peer.mac.0[0] & 1 == 1 {
        return Err(DriverError::Invalid(format!(
            "peer {}: {} is a multicast MAC",
            peer.ip, peer.mac
        )));
    }
    Ok(())
}

/// True when another peer (a dual-stack twin) uses the same MAC and VTEP.
fn mac_shared(rt: &NetRt, p: &Peer, except: &IpAddr) -> bool {
    rt.inner
        .lock()
        .peers
        .values()
        .any(|o| o.ip != p.ip && o.ip != *except && o.mac == p.mac && o.vtep == p.vtep)
}

async fn program(rt: &NetRt, peer: &Peer) -> Result<()> {
    rt.h.neighbours()
        .add(rt.vxlan, peer.ip)
        .link_layer_address(&peer.mac.octets())
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(nl::ctx(format!(
            "adding neighbour {} -> {} on network {}",
            peer.ip, peer.mac, rt.config.id
        )))?;
    let fdb =
        rt.h.neighbours()
            .add_bridge(rt.vxlan, &peer.mac.octets())
            .destination(peer.vtep)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await;
    if let Err(e) = fdb {
        let _ = delete_neighbour(rt, &peer.ip).await;
        return Err(nl::ctx(format!(
            "adding FDB entry {} -> {} on network {}",
            peer.mac, peer.vtep, rt.config.id
        ))(e));
    }
    Ok(())
}

pub(super) async fn remove(drv: &VxlanDriver, network_id: &str, peer: &Peer) -> Result<()> {
    let rt = drv.net(network_id)?;
    let _g = rt.peer_lock.lock().await;
    let known = rt.inner.lock().peers.get(&peer.ip).copied();
    if known != Some(*peer) {
        // Unknown, or already replaced by a newer location: nothing to undo.
        return Ok(());
    }
    delete_neighbour(&rt, &peer.ip).await?;
    if !mac_shared(&rt, peer, &peer.ip) {
        delete_fdb(&rt, &peer.mac, &peer.vtep).await?;
    }
    rt.inner.lock().peers.remove(&peer.ip);
    Ok(())
}

fn gone(e: &rtnetlink::Error) -> bool {
    matches!(
        nl::errno(e),
        Some(nl::ENOENT) | Some(nl::ESRCH) | Some(nl::ENODEV)
    )
}

pub(super) async fn delete_neighbour(rt: &NetRt, ip: &IpAddr) -> Result<()> {
    let mut m = NeighbourMessage::default();
    m.header.family = if ip.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    m.header.ifindex = rt.vxlan;
    m.attributes.push(NeighbourAttribute::Destination(match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(*v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(*v6),
    }));
    match rt.h.neighbours().del(m).execute().await {
        Err(e) if gone(&e) => Ok(()),
        r => r.map_err(nl::ctx(format!(
            "deleting neighbour {ip} on network {}",
            rt.config.id
        ))),
    }
}

pub(super) async fn delete_fdb(rt: &NetRt, mac: &MacAddr, vtep: &IpAddr) -> Result<()> {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = rt.vxlan;
    m.header.flags = NeighbourFlags::Own;
    m.header.state = NeighbourState::Permanent;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(match vtep {
            IpAddr::V4(v4) => NeighbourAddress::Inet(*v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(*v6),
        }));
    match rt.h.neighbours().del(m).execute().await {
        Err(e) if gone(&e) => Ok(()),
        r => r.map_err(nl::ctx(format!(
            "deleting FDB entry {mac} on network {}",
            rt.config.id
        ))),
    }
}

/// Programs a peer again (after its VXLAN device was rebuilt).
pub(super) async fn reprogram(rt: &NetRt, peer: &Peer) -> Result<()> {
    program(rt, peer).await
}
