//! Thin helpers over rtnetlink: connections inside a namespace, lookups,
//! and the few requests the drivers share.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};
use swarm_api::net::Cidr;

use crate::error::{DriverError, Result};
use crate::netns::Netns;

/// The positive errno of a failed request.
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

pub(crate) const EEXIST: i32 = nix::libc::EEXIST;
pub(crate) const ENODEV: i32 = nix::libc::ENODEV;
pub(crate) const ENOENT: i32 = nix::libc::ENOENT;
pub(crate) const ESRCH: i32 = nix::libc::ESRCH;

/// Wraps a netlink error with what was being done.
pub(crate) fn ctx(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> DriverError {
    let op = op.into();
    move |source| DriverError::Netlink { op, source }
}

/// A route-netlink connection opened inside `ns` (the caller's namespace
/// when `None`); its I/O task runs on the current tokio runtime.
pub(crate) async fn connect(ns: Option<&Netns>) -> Result<Handle> {
    let io = |source| DriverError::Io {
        op: "opening a netlink socket".into(),
        source,
    };
    let (conn, handle, _) = match ns {
        None => rtnetlink::new_connection().map_err(io)?,
        Some(ns) => {
            // The socket must be created on a thread inside the namespace;
            // registering it with the reactor needs the runtime's context.
            let rt = tokio::runtime::Handle::current();
            ns.run_async(move || {
                let _guard = rt.enter();
                rtnetlink::new_connection()
            })
            .await?
            .map_err(io)?
        }
    };
    tokio::spawn(conn);
    Ok(handle)
}

/// The link named `name`, if any.
pub(crate) async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(m) => Ok(m),
        Err(e) if matches!(errno(&e), Some(ENODEV)) => Ok(None),
        Err(e) => Err(ctx(format!("looking up link {name}"))(e)),
    }
}

/// Every link of the connection's namespace.
pub(crate) async fn all_links(h: &Handle) -> Result<Vec<LinkMessage>> {
    h.link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(ctx("listing links"))
}

pub(crate) fn link_name(m: &LinkMessage) -> Option<&str> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_alias(m: &LinkMessage) -> Option<&str> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_mtu(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(n) => Some(*n),
        _ => None,
    })
}

pub(crate) fn link_controller(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(n) => Some(*n),
        _ => None,
    })
}

pub(crate) fn link_kind(m: &LinkMessage) -> Option<&InfoKind> {
    link_infos(m).find_map(|i| match i {
        LinkInfo::Kind(k) => Some(k),
        _ => None,
    })
}

pub(crate) fn link_data(m: &LinkMessage) -> Option<&InfoData> {
    link_infos(m).find_map(|i| match i {
        LinkInfo::Data(d) => Some(d),
        _ => None,
    })
}

fn link_infos(m: &LinkMessage) -> impl Iterator<Item = &LinkInfo> {
    m.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::LinkInfo(v) => Some(v.iter()),
            _ => None,
        })
        .flatten()
}

pub(crate) fn is_up(m: &LinkMessage) -> bool {
    m.header.flags.contains(LinkFlags::Up)
}

/// Brings a link up.
pub(crate) async fn set_up(h: &Handle, index: u32, what: &str) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(ctx(format!("bringing {what} up")))
}

/// Brings `lo` up (a new namespace has it down).
pub(crate) async fn loopback_up(h: &Handle) -> Result<()> {
    match link_by_name(h, "lo").await? {
        Some(lo) if !is_up(&lo) => set_up(h, lo.header.index, "lo").await,
        _ => Ok(()),
    }
}

/// Adds an address (IPv6 without duplicate address detection, so it is
/// usable at once; the IPAM guarantees uniqueness).
pub(crate) async fn add_address(h: &Handle, index: u32, addr: &Cidr, what: &str) -> Result<()> {
    let mut req = h.address().add(index, addr.addr(), addr.prefix());
    if addr.is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
        r => r.map_err(ctx(format!("adding address {addr} to {what}"))),
    }
}

/// Sets (replaces) the default route of the gateway's family.
pub(crate) async fn set_default_route(h: &Handle, gateway: IpAddr, what: &str) -> Result<()> {
    let any: IpAddr = if gateway.is_ipv6() {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    let msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(any, 0)
        .and_then(|b| b.gateway(gateway))
        .map_err(|e| DriverError::Invalid(format!("default route via {gateway}: {e}")))?
        .build();
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(ctx(format!(
            "setting the default route via {gateway} in {what}"
        )))
}

/// Deletes a link; a link already gone is not an error.
pub(crate) async fn delete_link(h: &Handle, index: u32, what: &str) -> Result<()> {
    match h.link().del(index).execute().await {
        Err(e) if matches!(errno(&e), Some(ENODEV) | Some(ENOENT)) => Ok(()),
        r => r.map_err(ctx(format!("deleting {what}"))),
    }
}

/// Deletes the link named `name` if it exists.
pub(crate) async fn delete_link_by_name(h: &Handle, name: &str) -> Result<()> {
    match link_by_name(h, name).await? {
        Some(m) => delete_link(h, m.header.index, name).await,
        None => Ok(()),
    }
}

/// A bare link message builder for a veth peer end.
pub(crate) fn peer_builder(name: &str) -> LinkMessageBuilder<LinkUnspec> {
    LinkMessageBuilder::<LinkUnspec>::new().name(name.to_string())
}

/// Addresses configured on a link.
pub(crate) async fn link_addresses(h: &Handle, index: u32) -> Result<Vec<Cidr>> {
    let msgs: Vec<_> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(ctx("listing addresses"))?;
    let mut out = Vec::new();
    for m in msgs {
        if m.header.index != index {
            continue;
        }
        let ip = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = ip
            && let Ok(c) = Cidr::new(ip, m.header.prefix_len)
        {
            out.push(c);
        }
    }
    Ok(out)
}

/// Sets a link's alias (the kernel ignores `IFLA_IFALIAS` when creating a
/// link, so it is set afterwards).
pub(crate) async fn set_alias(h: &Handle, name: &str, alias: String) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_name(name).alias(alias).build())
        .execute()
        .await
        .map_err(ctx(format!("setting the alias of {name}")))
}
