//! IPVS generic netlink messages (linux/ip_vs.h), encoded by hand.

use std::net::IpAddr;

use crate::nl::{MsgBuilder, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

/// Generic netlink controller family id.
pub(crate) const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
pub(crate) const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// The IPVS family name.
pub(crate) const IPVS_FAMILY: &str = "IPVS";
const IPVS_GENL_VERSION: u8 = 1;

/// IPVS commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Cmd {
    NewService = 1,
    DelService = 3,
    GetService = 4,
    NewDest = 5,
    SetDest = 6,
    DelDest = 7,
    Flush = 17,
}

const IPVS_CMD_ATTR_SERVICE: u16 = 1;
const IPVS_CMD_ATTR_DEST: u16 = 2;

const IPVS_SVC_ATTR_AF: u16 = 1;
const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
const IPVS_SVC_ATTR_ADDR: u16 = 3;
const IPVS_SVC_ATTR_PORT: u16 = 4;
const IPVS_SVC_ATTR_FWMARK: u16 = 5;
const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
const IPVS_SVC_ATTR_FLAGS: u16 = 7;
const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
const IPVS_SVC_ATTR_NETMASK: u16 = 9;

const IPVS_DEST_ATTR_ADDR: u16 = 1;
const IPVS_DEST_ATTR_PORT: u16 = 2;
const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;

/// Forwarding by masquerading (NAT), what Docker uses.
pub(crate) const IP_VS_CONN_F_MASQ: u32 = 0;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// How an IPVS service is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SvcKey {
    /// Protocol number, VIP, port.
    Addr {
        protocol: u8,
        vip: IpAddr,
        port: u16,
    },
    /// A firewall mark (set by a mangle rule on the VIP), IPv4 or IPv6.
    Fwmark { mark: u32, v6: bool },
}

/// An IPVS destination (real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dest {
    pub(crate) addr: IpAddr,
    pub(crate) port: u16,
    pub(crate) weight: u32,
}

fn af(v6: bool) -> u16 {
    if v6 { AF_INET6 } else { AF_INET }
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn genl(family: u16, cmd: u8, flags: u16) -> MsgBuilder {
    MsgBuilder::new(family, flags).raw(&[cmd, IPVS_GENL_VERSION, 0, 0])
}

/// Asks the controller for a family's id.
pub(crate) fn get_family(name: &str) -> MsgBuilder {
    MsgBuilder::new(GENL_ID_CTRL, NLM_F_REQUEST)
        .raw(&[CTRL_CMD_GETFAMILY, 1, 0, 0])
        .str_attr(CTRL_ATTR_FAMILY_NAME, name)
}

fn put_service(m: MsgBuilder, key: SvcKey, full: bool) -> MsgBuilder {
    let mut m = m.begin(IPVS_CMD_ATTR_SERVICE);
    let v6 = match key {
        SvcKey::Addr { vip, .. } => vip.is_ipv6(),
        SvcKey::Fwmark { v6, .. } => v6,
    };
    m = m.attr(IPVS_SVC_ATTR_AF, &af(v6).to_ne_bytes());
    match key {
        SvcKey::Addr {
            protocol,
            vip,
            port,
        } => {
            m = m
                .attr(IPVS_SVC_ATTR_PROTOCOL, &u16::from(protocol).to_ne_bytes())
                .attr(IPVS_SVC_ATTR_ADDR, &addr_bytes(vip))
                .attr(IPVS_SVC_ATTR_PORT, &port.to_be_bytes());
        }
        SvcKey::Fwmark { mark, .. } => {
            m = m.attr(IPVS_SVC_ATTR_FWMARK, &mark.to_ne_bytes());
        }
    }
    if full {
        let netmask: u32 = if v6 { 128 } else { 0xffff_ffff };
        let mut flags = [0u8; 8];
        flags[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // mask: all flags given
        m = m
            .str_attr(IPVS_SVC_ATTR_SCHED_NAME, "rr")
            .attr(IPVS_SVC_ATTR_FLAGS, &flags)
            .attr(IPVS_SVC_ATTR_TIMEOUT, &0u32.to_ne_bytes())
            .attr(IPVS_SVC_ATTR_NETMASK, &netmask.to_ne_bytes());
    }
    m.end()
}

/// Creates (NewService) a round-robin service, or deletes one (DelService).
pub(crate) fn service(family: u16, cmd: Cmd, key: SvcKey) -> MsgBuilder {
    let full = matches!(cmd, Cmd::NewService);
    put_service(
        genl(family, cmd as u8, NLM_F_REQUEST | NLM_F_ACK),
        key,
        full,
    )
}

/// Adds, updates or deletes a masquerading destination of a service.
pub(crate) fn dest(family: u16, cmd: Cmd, key: SvcKey, d: Dest) -> MsgBuilder {
    let m = put_service(
        genl(family, cmd as u8, NLM_F_REQUEST | NLM_F_ACK),
        key,
        false,
    );
    let mut m = m
        .begin(IPVS_CMD_ATTR_DEST)
        .attr(IPVS_DEST_ATTR_ADDR, &addr_bytes(d.addr))
        .attr(IPVS_DEST_ATTR_PORT, &d.port.to_be_bytes());
    if cmd != Cmd::DelDest {
        m = m
            .attr(IPVS_DEST_ATTR_FWD_METHOD, &IP_VS_CONN_F_MASQ.to_ne_bytes())
            .attr(IPVS_DEST_ATTR_WEIGHT, &d.weight.to_ne_bytes())
            .attr(IPVS_DEST_ATTR_U_THRESH, &0u32.to_ne_bytes())
            .attr(IPVS_DEST_ATTR_L_THRESH, &0u32.to_ne_bytes())
            .attr(
                IPVS_DEST_ATTR_ADDR_FAMILY,
                &af(d.addr.is_ipv6()).to_ne_bytes(),
            );
    }
    m.end()
}

/// Lists every service.
pub(crate) fn dump_services(family: u16) -> MsgBuilder {
    genl(family, Cmd::GetService as u8, NLM_F_REQUEST | NLM_F_DUMP)
}

/// Removes every service.
pub(crate) fn flush(family: u16) -> MsgBuilder {
    genl(family, Cmd::Flush as u8, NLM_F_REQUEST | NLM_F_ACK)
}

/// Parses a service from a GetService answer (after the genl header).
pub(crate) fn parse_service(payload: &[u8]) -> crate::Result<Option<SvcKey>> {
    use crate::nl::parse_attrs;
    let attrs = parse_attrs(payload.get(4..).unwrap_or_default())?;
    let Some((_, svc)) = attrs.into_iter().find(|(k, _)| *k == IPVS_CMD_ATTR_SERVICE) else {
        return Ok(None);
    };
    let (mut af_v, mut proto, mut addr, mut port, mut mark) = (None, None, None, None, None);
    for (k, v) in parse_attrs(svc)? {
        match k {
            IPVS_SVC_ATTR_AF => af_v = v.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])),
            IPVS_SVC_ATTR_PROTOCOL => proto = v.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])),
            IPVS_SVC_ATTR_ADDR => addr = Some(v.to_vec()),
            IPVS_SVC_ATTR_PORT => port = v.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])),
            IPVS_SVC_ATTR_FWMARK => {
                mark = v
                    .get(..4)
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            }
            _ => {}
        }
    }
    let v6 = af_v == Some(AF_INET6);
    if let Some(mark) = mark.filter(|m| *m != 0) {
        return Ok(Some(SvcKey::Fwmark { mark, v6 }));
    }
    let ip: Option<IpAddr> = match (v6, addr) {
        (false, Some(a)) if a.len() >= 4 => Some(IpAddr::from([a[0], a[1], a[2], a[3]])),
        (true, Some(a)) if a.len() >= 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            Some(IpAddr::from(o))
        }
        _ => None,
    };
    match (proto, ip, port) {
        (Some(p), Some(vip), Some(port)) => Ok(Some(SvcKey::Addr {
            protocol: u8::try_from(p).map_err(|_| crate::LbError::Malformed("protocol".into()))?,
            vip,
            port,
        })),
        _ => Err(crate::LbError::Malformed(
            "IPVS service without address".into(),
        )),
    }
}
