//! Forgetting the UDP flows of a removed backend (ctnetlink), as
//! kube-proxy does: without this a client that keeps sending from the same
//! port stays pinned to the removed task until the flow idles out.
//! TCP is left alone: a connection to a removed task ends by itself, and a
//! drained backend keeps its connections by design.

use std::net::{IpAddr, Ipv4Addr};

use crate::error::Result;
use crate::nl::{self, MsgBuilder, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NlSocket};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const AF_INET: u8 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPS_DST_NAT: u32 = 1 << 5;
const UDP: u8 = 17;

/// Which flows to forget: DNATed UDP flows answered by `backend` whose
/// original destination matches.
#[derive(Debug, Clone)]
pub(crate) struct FlowFilter {
    pub(crate) backend: Ipv4Addr,
    /// Original destination address (a VIP), if it must match.
    pub(crate) vip: Option<Ipv4Addr>,
    /// Original destination ports (published ports); empty: any.
    pub(crate) ports: Vec<u16>,
}

#[derive(Debug, Default)]
struct Tuple {
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
    proto: Option<u8>,
    dport: Option<u16>,
}

fn v4(b: &[u8]) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn parse_tuple(b: &[u8]) -> Result<Tuple> {
    let mut t = Tuple::default();
    for (k, v) in nl::parse_attrs(b)? {
        match k {
            CTA_TUPLE_IP => {
                for (k, v) in nl::parse_attrs(v)? {
                    match k {
                        CTA_IP_V4_SRC => t.src = v4(v),
                        CTA_IP_V4_DST => t.dst = v4(v),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (k, v) in nl::parse_attrs(v)? {
                    match k {
                        CTA_PROTO_NUM => t.proto = v.first().copied(),
                        CTA_PROTO_DST_PORT => {
                            t.dport = v.get(..2).map(|p| u16::from_be_bytes([p[0], p[1]]))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(t)
}

/// Deletes the matching flows; returns how many.
pub(crate) fn forget_flows(sock: &mut NlSocket, filters: &[FlowFilter]) -> Result<usize> {
    if filters.is_empty() {
        return Ok(0);
    }
    let dump = MsgBuilder::new(
        (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
        NLM_F_REQUEST | NLM_F_DUMP,
    )
    .raw(&[AF_INET, 0, 0, 0]);
    let answers = sock.dump(dump, "listing conntrack flows")?;
    let mut doomed: Vec<Vec<u8>> = Vec::new();
    for (_, payload) in &answers {
        let attrs = nl::parse_attrs(payload.get(4..).unwrap_or_default())?;
        let (mut orig_raw, mut orig, mut reply, mut status) = (None, None, None, 0u32);
        for (k, v) in attrs {
            match k {
                CTA_TUPLE_ORIG => {
                    orig_raw = Some(v.to_vec());
                    orig = Some(parse_tuple(v)?);
                }
                CTA_TUPLE_REPLY => reply = Some(parse_tuple(v)?),
                CTA_STATUS => {
                    status = v
                        .get(..4)
                        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
                        .unwrap_or(0)
                }
                _ => {}
            }
        }
        let (Some(raw), Some(o), Some(r)) = (orig_raw, orig, reply) else {
            continue;
        };
        if status & IPS_DST_NAT == 0 || o.proto != Some(UDP) {
            continue;
        }
        let hit = filters.iter().any(|f| {
            r.src == Some(f.backend)
                && f.vip.is_none_or(|vip| o.dst == Some(vip))
                && (f.ports.is_empty() || o.dport.is_some_and(|p| f.ports.contains(&p)))
        });
        if hit {
            doomed.push(raw);
        }
    }
    let mut n = 0;
    for raw in doomed {
        let mut m = MsgBuilder::new(
            (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .raw(&[AF_INET, 0, 0, 0]);
        m.put_begin(CTA_TUPLE_ORIG);
        m.put_raw(&raw);
        m.put_end();
        // A flow that ended meanwhile is not an error.
        if sock.request(m, "deleting a conntrack flow").is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// The filters for backends that left a service.
pub(crate) fn filters_for(
    old: &crate::ServiceState,
    new: Option<&crate::ServiceState>,
) -> Vec<FlowFilter> {
    let gone = old
        .backends
        .keys()
        .filter(|a| new.is_none_or(|n| !n.backends.contains_key(*a)));
    let vip = match old.spec.vip {
        Some(IpAddr::V4(v)) => Some(v),
        _ => None,
    };
    let ports: Vec<u16> = old
        .spec
        .ports
        .iter()
        .filter_map(|p| p.published.map(|x| x.port))
        .collect();
    let mut out = Vec::new();
    for a in gone {
        let IpAddr::V4(backend) = a else { continue };
        if vip.is_some() {
            out.push(FlowFilter {
                backend: *backend,
                vip,
                ports: Vec::new(),
            });
        }
        if !ports.is_empty() {
            out.push(FlowFilter {
                backend: *backend,
                vip: None,
                ports: ports.clone(),
            });
        }
    }
    out
}

/// Starts the thread that forgets flows, with its own socket in `netns`.
/// It ends when the sender is dropped.
pub(crate) fn spawn_cleaner(
    netns: &crate::NetNs,
) -> Result<std::sync::mpsc::Sender<Vec<FlowFilter>>> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<FlowFilter>>();
    netns.spawn("swarm-lb-conntrack", move || {
        let mut sock = match NlSocket::open(super::netlink::NETLINK_NETFILTER) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "conntrack cleaner: no netlink socket");
                return;
            }
        };
        while let Ok(mut filters) = rx.recv() {
            // Coalesce what queued up meanwhile: one walk for all.
            while let Ok(more) = rx.try_recv() {
                filters.extend(more);
            }
            match forget_flows(&mut sock, &filters) {
                Ok(n) => tracing::debug!(flows = n, "forgot UDP flows of removed backends"),
                Err(e) => tracing::warn!(error = %e, "could not forget UDP flows"),
            }
        }
    })?;
    Ok(tx)
}
