//! The IPVS dataplane over generic netlink: what Docker programs in each
//! sandbox. Each VIP port is an IPVS service (round-robin, masquerading)
//! whose destinations are the backends; draining is IPVS's weight 0
//! (quiesced: established connections stay, no new ones).
//!
//! IPVS has no transactions: a change is a short series of requests, and
//! a failure part-way leaves the earlier ones applied (the next change or
//! a reconcile repairs it). Published ports and port-less VIPs (which
//! Docker serves with firewall marks set by iptables) are refused: use the
//! nftables backend for those. The kernel here has no IPVS, so the tests
//! check the encoding byte for byte and run the kernel path only where
//! `/proc/net/ip_vs` exists.

mod msg;

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::balancer::{Balancer, Change, Dataplane};
use crate::error::{LbError, Result};
use crate::model::ServiceState;
use crate::netns::NetNs;
use crate::nl::{self, NlSocket};
use msg::{Cmd, Dest, SvcKey};

const NETLINK_GENERIC: isize = 16;

/// A [`crate::LoadBalancer`] programming IPVS.
pub type IpvsBalancer = Balancer<IpvsDataplane>;

impl IpvsBalancer {
    /// Connects to IPVS in `netns`.
    pub fn open(netns: NetNs) -> Result<Self> {
        Ok(Balancer::new(IpvsDataplane::open(netns)?))
    }
}

/// True when the kernel offers IPVS in the calling thread's namespace.
pub fn available() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
}

/// The IPVS [`Dataplane`].
pub struct IpvsDataplane {
    family: u16,
    sock: Mutex<NlSocket>,
}

impl IpvsDataplane {
    /// Resolves the IPVS generic netlink family in `netns`.
    pub fn open(netns: NetNs) -> Result<Self> {
        let (family, sock) = netns.run(|| -> Result<(u16, NlSocket)> {
            if !available() {
                return Err(LbError::KernelFeature(
                    "IPVS (/proc/net/ip_vs is missing; load ip_vs)".into(),
                ));
            }
            let mut sock = NlSocket::open(NETLINK_GENERIC)?;
            let family = resolve_family(&mut sock)?;
            Ok((family, sock))
        })??;
        Ok(IpvsDataplane {
            family,
            sock: Mutex::new(sock),
        })
    }

    fn request(&self, m: nl::MsgBuilder, what: &str) -> Result<()> {
        self.sock.lock().request(m, what)
    }

    /// The services the kernel holds (all of IPVS in the namespace).
    pub fn kernel_services(&self) -> Result<usize> {
        let answers = self
            .sock
            .lock()
            .dump(msg::dump_services(self.family), "listing IPVS services")?;
        let mut n = 0;
        for (_, payload) in answers {
            if msg::parse_service(&payload)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }
}

fn resolve_family(sock: &mut NlSocket) -> Result<u16> {
    let answers = sock.dump(
        msg::get_family(msg::IPVS_FAMILY),
        "resolving the IPVS family",
    )?;
    for (_, payload) in answers {
        for (k, v) in nl::parse_attrs(payload.get(4..).unwrap_or_default())? {
            if k == msg::CTRL_ATTR_FAMILY_ID {
                return nl::u16_at(v, 0);
            }
        }
    }
    Err(LbError::KernelFeature("IPVS generic netlink family".into()))
}

/// The IPVS services of a state with their destinations.
fn services(s: &ServiceState) -> BTreeMap<SvcKey, BTreeMap<std::net::IpAddr, Dest>> {
    let mut out = BTreeMap::new();
    let Some(vip) = s.spec.vip else { return out };
    for p in &s.spec.ports {
        let key = SvcKey::Addr {
            protocol: p.protocol.number(),
            vip,
            port: p.target_port,
        };
        let dests = s
            .backends
            .values()
            .map(|b| {
                (
                    b.addr,
                    Dest {
                        addr: b.addr,
                        port: p.target_port,
                        weight: b.weight,
                    },
                )
            })
            .collect();
        out.insert(key, dests);
    }
    out
}

impl Dataplane for IpvsDataplane {
    fn kind(&self) -> &'static str {
        "ipvs"
    }

    fn check(&self, state: &ServiceState) -> Result<()> {
        check_state(state)
    }

    fn apply(&self, change: Change<'_>) -> Result<()> {
        let old = change.old.map(services).unwrap_or_default();
        let new = change.new.map(services).unwrap_or_default();
        let f = self.family;
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            self.request(
                msg::service(f, Cmd::DelService, *key),
                "deleting IPVS service",
            )?;
        }
        for (key, dests) in &new {
            let before = old.get(key);
            if before.is_none() {
                self.request(
                    msg::service(f, Cmd::NewService, *key),
                    "adding IPVS service",
                )?;
            }
            let empty = BTreeMap::new();
            let before = before.unwrap_or(&empty);
            for (addr, d) in before {
                if !dests.contains_key(addr) {
                    self.request(
                        msg::dest(f, Cmd::DelDest, *key, *d),
                        "deleting IPVS destination",
                    )?;
                }
            }
            for (addr, d) in dests {
                match before.get(addr) {
                    None => self.request(
                        msg::dest(f, Cmd::NewDest, *key, *d),
                        "adding IPVS destination",
                    )?,
                    Some(b) if b != d => self.request(
                        msg::dest(f, Cmd::SetDest, *key, *d),
                        "updating IPVS destination",
                    )?,
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    fn replace_all(&self, all: &[&ServiceState]) -> Result<()> {
        self.request(msg::flush(self.family), "flushing IPVS")?;
        for s in all {
            self.apply(Change {
                old: None,
                new: Some(s),
            })?;
        }
        Ok(())
    }
}

/// What IPVS (as driven here) can express.
fn check_state(state: &ServiceState) -> Result<()> {
    if state.spec.ports.iter().any(|p| p.published.is_some()) {
        return Err(LbError::Unsupported {
            backend: "ipvs",
            what: "published ports (use the nftables backend for the routing mesh)".into(),
        });
    }
    if state.spec.vip.is_some() && state.spec.ports.is_empty() {
        return Err(LbError::Unsupported {
            backend: "ipvs",
            what: "a VIP without ports (firewall-mark services need mangle rules)".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// Exposes the answer parser to the crate's property tests.
#[cfg(test)]
pub(crate) fn parse_service_for_tests(payload: &[u8]) -> Result<()> {
    msg::parse_service(payload).map(|_| ())
}
