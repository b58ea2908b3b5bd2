//! Joining and leaving endpoints: a veth pair per endpoint, inner end made
//! directly in the task's namespace.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{NetRt, Slot, VxlanDriver, alias};
use crate::driver::{EndpointInfo, JoinRequest, NetworkConfig};
use crate::error::{DriverError, Result};
use crate::netns::Netns;
use crate::nl;

/// Name of the outer veth end of an endpoint inside the network namespace:
/// `ve` and 8 hex digits of a hash of the endpoint id (FNV-1a, stable across
/// runs and builds).
pub(super) fn outer_name(endpoint_id: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in endpoint_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("ve{h:08x}")
}

pub(super) async fn join(drv: &VxlanDriver, req: &JoinRequest) -> Result<EndpointInfo> {
    let rt = drv.net(&req.network_id)?;
    req.validate(&rt.config)?;
    if !super::valid_id(&req.endpoint_id) {
        return Err(DriverError::Invalid(format!(
            "endpoint id {:?} must be 1 to 64 of [A-Za-z0-9_.-]",
            req.endpoint_id
        )));
    }
    let mac = req
        .mac()
        .ok_or_else(|| DriverError::Invalid(format!("endpoint {}: no address", req.endpoint_id)))?;
    let info = EndpointInfo {
        network_id: req.network_id.clone(),
        endpoint_id: req.endpoint_id.clone(),
        ifname: req.ifname.clone(),
        mac,
        addresses: req.addresses.clone(),
    };
    let outer = outer_name(&req.endpoint_id);
    drv.settle_where(|name, _| name == outer).await;
    {
        let mut inner = rt.inner.lock();
        if inner.deleted {
            return Err(DriverError::UnknownNetwork(req.network_id.clone()));
        }
        match inner.endpoints.get(&req.endpoint_id) {
            Some(Slot::Ready(old, _)) if *old == info => return Ok(info),
            Some(_) => {
                return Err(DriverError::EndpointConflict {
                    endpoint: req.endpoint_id.clone(),
                    network: req.network_id.clone(),
                });
            }
            None => {}
        }
        for slot in inner.endpoints.values() {
            if let Slot::Ready(other, other_outer) = slot {
                if let Some(a) = other
                    .addresses
                    .iter()
                    .find(|a| req.addresses.iter().any(|r| r.addr() == a.addr()))
                {
                    return Err(DriverError::AddressInUse(a.addr()));
                }
                if *other_outer == outer {
                    return Err(DriverError::NameTaken {
                        what: "interface",
                        name: outer,
                        place: format!("for endpoint {} (hash collision)", other.endpoint_id),
                    });
                }
            }
        }
        inner
            .endpoints
            .insert(req.endpoint_id.clone(), Slot::Pending);
    }
    let r = plumb(&rt, req, &info, &outer).await;
    let mut inner = rt.inner.lock();
    match r {
        Ok(()) => {
            inner
                .endpoints
                .insert(req.endpoint_id.clone(), Slot::Ready(info.clone(), outer));
            Ok(info)
        }
        Err(e) => {
            inner.endpoints.remove(&req.endpoint_id);
            Err(e)
        }
    }
}

/// Creates the veth pair and configures the inner end; on failure deletes
/// the pair.
async fn plumb(rt: &Arc<NetRt>, req: &JoinRequest, info: &EndpointInfo, outer: &str) -> Result<()> {
    let task_ns = req.netns.open()?;
    let peer = nl::peer_builder(&req.ifname)
        .mtu(rt.mtu)
        .address(info.mac.octets().to_vec())
        .setns_by_fd(task_ns.as_fd().as_raw_fd())
        .build();
    let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(outer.to_string())
        .mtu(rt.mtu)
        .controller(rt.bridge)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    if let Err(e) = rt.h.link().add(veth).execute().await {
        if nl::errno(&e) == Some(nl::EEXIST) {
            return Err(name_taken(rt, outer, &req.ifname).await);
        }
        return Err(nl::ctx(format!(
            "creating veth {outer}/{} for endpoint {}",
            req.ifname, req.endpoint_id
        ))(e));
    }
    // The alias (read back after a restart) and the task's side are set
    // concurrently.
    let alias = nl::set_alias(
        &rt.h,
        outer,
        alias::endpoint(&info.endpoint_id, &info.ifname, &info.addresses),
    );
    let inside = configure_inside(&task_ns, req, &rt.config);
    match futures::future::try_join(alias, inside).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = delete_outer(rt, outer).await;
            Err(e)
        }
    }
}

/// Which name was taken, for a clear error.
async fn name_taken(rt: &NetRt, outer: &str, ifname: &str) -> DriverError {
    if matches!(nl::link_by_name(&rt.h, outer).await, Ok(Some(_))) {
        return DriverError::NameTaken {
            what: "interface",
            name: outer.to_string(),
            place: format!("in network namespace {}", rt.ns.name()),
        };
    }
    DriverError::NameTaken {
        what: "interface",
        name: ifname.to_string(),
        place: "in the task's network namespace".into(),
    }
}

/// Inside the task's namespace: bring the interface and `lo` up, add the
/// addresses, set the default route if asked.
async fn configure_inside(
    task_ns: &Netns,
    req: &JoinRequest,
    network: &NetworkConfig,
) -> Result<()> {
    let th = nl::connect(Some(task_ns)).await?;
    let what = format!("{} in the task's namespace", req.ifname);
    let index = nl::link_by_name(&th, &req.ifname)
        .await?
        .map(|m| m.header.index)
        .ok_or_else(|| DriverError::Invalid(format!("{what} vanished right after its creation")))?;
    for a in &req.addresses {
        nl::add_address(&th, index, a, &what).await?;
    }
    th.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl::ctx(format!("bringing {what} up")))?;
    nl::loopback_up(&th).await?;
    if req.default_route {
        // Via the gateway of the subnet of the first address.
        if let Some(s) = req
            .addresses
            .first()
            .and_then(|a| network.subnet_of(&a.addr()))
        {
            nl::set_default_route(&th, s.gateway, "the task's namespace").await?;
        }
    }
    Ok(())
}

async fn delete_outer(rt: &NetRt, outer: &str) -> Result<()> {
    let msg = LinkUnspec::new_with_name(outer).build();
    match rt.h.link().del_with_message(msg).execute().await {
        Err(e) if matches!(nl::errno(&e), Some(nl::ENODEV) | Some(nl::ENOENT)) => Ok(()),
        r => r.map_err(nl::ctx(format!("deleting veth {outer}"))),
    }
}

pub(super) async fn leave(drv: &VxlanDriver, network_id: &str, endpoint_id: &str) -> Result<()> {
    let rt = drv.net(network_id)?;
    let outer = match rt.inner.lock().endpoints.get(endpoint_id) {
        None => return Ok(()),
        Some(Slot::Pending) => {
            return Err(DriverError::EndpointConflict {
                endpoint: endpoint_id.to_string(),
                network: network_id.to_string(),
            });
        }
        Some(Slot::Ready(_, outer)) => outer.clone(),
    };
    // Disconnect at once: the outer end goes down and leaves the bridge, so
    // no frame reaches the task any more.
    let detach = LinkUnspec::new_with_name(&outer)
        .down()
        .nocontroller()
        .build();
    match rt.h.link().set(detach).execute().await {
        Err(e) if matches!(nl::errno(&e), Some(nl::ENODEV) | Some(nl::ENOENT)) => {}
        r => r.map_err(nl::ctx(format!("disconnecting veth {outer}")))?,
    }
    rt.inner.lock().endpoints.remove(endpoint_id);
    // Deleting the pair costs 20-30 ms of RCU grace periods in the kernel:
    // done in the background (a join reusing the name, a network deletion
    // and `settle` wait for it). Deleting the outer end deletes the inner
    // one in the task's namespace.
    let rt2 = Arc::clone(&rt);
    let name = outer.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = delete_outer(&rt2, &name).await {
            tracing::warn!("deleting veth {name}: {e}");
        }
    });
    let reap: super::Reap = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
        let _ = task.await;
    }));
    let id = drv
        .next_reap
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    drv.reaping
        .lock()
        .insert(outer.clone(), (network_id.to_string(), id, reap.clone()));
    let map = Arc::clone(&drv.reaping);
    tokio::spawn(async move {
        reap.await;
        let mut m = map.lock();
        if m.get(&outer).is_some_and(|(_, i, _)| *i == id) {
            m.remove(&outer);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_names_fit_and_are_stable() {
        let n = outer_name("3pq8f4m1k2j5h6g7d9s0a1z2x");
        assert_eq!(n.len(), 10);
        assert_eq!(n, outer_name("3pq8f4m1k2j5h6g7d9s0a1z2x"));
        assert_ne!(n, outer_name("3pq8f4m1k2j5h6g7d9s0a1z2y"));
    }
}
