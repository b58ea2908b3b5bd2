//! The userspace dataplane: a TCP/UDP proxy on tokio, for hosts with
//! neither nftables NAT nor IPVS.
//!
//! Each VIP port and each published port gets a listener (bound with
//! `IP_FREEBIND`, so the VIP need not be configured yet; it must route to
//! the namespace, e.g. on `lo`, to receive traffic). Connections and UDP
//! flows are spread over the service's active backends with the same
//! weighted slot table as the kernel backends. Draining or removing a
//! backend leaves its established connections alone.
//!
//! Costs compared with the kernel: every byte crosses user space twice,
//! and backends see the proxy's address, not the client's.

mod tcp;
mod udp;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use socket2::{Domain, Socket, Type};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::balancer::{Balancer, Change, Dataplane};
use crate::error::{LbError, Result};
use crate::model::{Backend, Protocol, ServiceState};
use crate::netns::NetNs;
use crate::slots;

/// A [`crate::LoadBalancer`] proxying in user space.
pub type ProxyBalancer = Balancer<ProxyDataplane>;

impl ProxyBalancer {
    /// A proxy whose sockets live in `netns`, running on `runtime`.
    pub fn start(netns: NetNs, runtime: Handle) -> Self {
        Balancer::new(ProxyDataplane::new(netns, runtime))
    }
}

/// Idle time after which a UDP flow is forgotten.
pub const UDP_IDLE: Duration = Duration::from_secs(30);
/// Time allowed to connect to a backend.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a listener listens and where it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ListenKey {
    protocol: Protocol,
    addr: SocketAddr,
    target_port: u16,
}

/// A service's current slot table, shared with its listeners; each
/// listener keeps its own round-robin position.
pub(crate) struct Picker {
    table: RwLock<Vec<IpAddr>>,
}

impl Picker {
    fn new() -> Self {
        Picker {
            table: RwLock::new(Vec::new()),
        }
    }

    fn set(&self, backends: &[Backend]) {
        let size = u32::try_from(backends.len()).unwrap_or(u32::MAX).max(64);
        *self.table.write() = slots::assign(backends, size);
    }

    /// The next backend for a listener, round-robin over the weighted slot
    /// table.
    pub(crate) fn pick(&self, position: &AtomicUsize) -> Option<IpAddr> {
        let t = self.table.read();
        if t.is_empty() {
            return None;
        }
        let i = position.fetch_add(1, Ordering::Relaxed) % t.len();
        Some(t[i])
    }
}

/// Creates sockets inside the proxy's namespace.
#[derive(Debug, Clone)]
pub(crate) struct SocketFactory {
    netns: NetNs,
}

impl SocketFactory {
    fn socket(&self, family: IpAddr, ty: Type, bind: Option<SocketAddr>) -> Result<Socket> {
        let domain = if family.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        self.netns.run(move || -> Result<Socket> {
            let s = Socket::new(domain, ty, None).map_err(|e| LbError::io("creating socket", e))?;
            s.set_nonblocking(true)
                .map_err(|e| LbError::io("nonblocking", e))?;
            if let Some(addr) = bind {
                s.set_reuse_address(true)
                    .map_err(|e| LbError::io("SO_REUSEADDR", e))?;
                if addr.is_ipv4() {
                    s.set_freebind_v4(true)
                        .map_err(|e| LbError::io("IP_FREEBIND", e))?;
                } else {
                    s.set_freebind_v6(true)
                        .map_err(|e| LbError::io("IPV6_FREEBIND", e))?;
                }
                s.bind(&addr.into())
                    .map_err(|e| LbError::io(format!("binding {addr}"), e))?;
            }
            Ok(s)
        })?
    }

    /// An unbound socket to connect to `to`.
    pub(crate) fn outgoing(&self, to: IpAddr, ty: Type) -> Result<Socket> {
        let s = self.socket(to, ty, None)?;
        if ty == Type::DGRAM {
            let any: SocketAddr = if to.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            s.bind(&any.into())
                .map_err(|e| LbError::io("binding udp", e))?;
        }
        Ok(s)
    }
}

struct Listener {
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The userspace [`Dataplane`].
pub struct ProxyDataplane {
    factory: SocketFactory,
    runtime: Handle,
    pickers: Mutex<BTreeMap<String, Arc<Picker>>>,
    listeners: Mutex<BTreeMap<(String, ListenKey), Listener>>,
}

impl ProxyDataplane {
    /// A proxy whose sockets live in `netns`, running on `runtime`.
    pub fn new(netns: NetNs, runtime: Handle) -> Self {
        ProxyDataplane {
            factory: SocketFactory { netns },
            runtime,
            pickers: Mutex::new(BTreeMap::new()),
            listeners: Mutex::new(BTreeMap::new()),
        }
    }

    /// Addresses the proxy listens on for a service.
    pub fn listening(&self, id: &str) -> Vec<(Protocol, SocketAddr)> {
        self.listeners
            .lock()
            .keys()
            .filter(|(s, _)| s == id)
            .map(|(_, k)| (k.protocol, k.addr))
            .collect()
    }

    fn start(&self, key: ListenKey, picker: Arc<Picker>) -> Result<Listener> {
        let ty = match key.protocol {
            Protocol::Tcp => Type::STREAM,
            Protocol::Udp => Type::DGRAM,
            Protocol::Sctp => {
                return Err(LbError::Unsupported {
                    backend: "userspace",
                    what: "SCTP".into(),
                });
            }
        };
        let sock = self.factory.socket(key.addr.ip(), ty, Some(key.addr))?;
        let _guard = self.runtime.enter();
        let factory = self.factory.clone();
        let task = match key.protocol {
            Protocol::Tcp => {
                sock.listen(1024).map_err(|e| LbError::io("listen", e))?;
                let l = tokio::net::TcpListener::from_std(sock.into())
                    .map_err(|e| LbError::io("registering listener", e))?;
                self.runtime
                    .spawn(tcp::serve(l, picker, factory, key.target_port))
            }
            _ => {
                let u = tokio::net::UdpSocket::from_std(sock.into())
                    .map_err(|e| LbError::io("registering udp socket", e))?;
                self.runtime
                    .spawn(udp::serve(u, picker, factory, key.target_port))
            }
        };
        Ok(Listener { task })
    }
}

fn listen_keys(s: &ServiceState) -> BTreeSet<ListenKey> {
    let mut out = BTreeSet::new();
    for p in &s.spec.ports {
        if let Some(vip) = s.spec.vip {
            out.insert(ListenKey {
                protocol: p.protocol,
                addr: SocketAddr::new(vip, p.target_port),
                target_port: p.target_port,
            });
        }
        if let Some(publ) = p.published {
            let any: IpAddr = match s.spec.vip {
                Some(IpAddr::V6(_)) => Ipv6Addr::UNSPECIFIED.into(),
                _ => Ipv4Addr::UNSPECIFIED.into(),
            };
            out.insert(ListenKey {
                protocol: p.protocol,
                addr: SocketAddr::new(any, publ.port),
                target_port: p.target_port,
            });
        }
    }
    out
}

impl Dataplane for ProxyDataplane {
    fn kind(&self) -> &'static str {
        "userspace"
    }

    fn check(&self, state: &ServiceState) -> Result<()> {
        if state
            .spec
            .ports
            .iter()
            .any(|p| p.protocol == Protocol::Sctp)
        {
            return Err(LbError::Unsupported {
                backend: "userspace",
                what: "SCTP".into(),
            });
        }
        Ok(())
    }

    fn apply(&self, change: Change<'_>) -> Result<()> {
        let id = match change.new.or(change.old) {
            Some(s) => s.spec.id.clone(),
            None => return Ok(()),
        };
        let Some(new) = change.new else {
            self.listeners.lock().retain(|(s, _), _| *s != id);
            self.pickers.lock().remove(&id);
            return Ok(());
        };
        let picker = self
            .pickers
            .lock()
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Picker::new()))
            .clone();
        let want = listen_keys(new);
        // Start what is missing first: on error nothing was torn down.
        let mut started = Vec::new();
        {
            let have = self.listeners.lock();
            for k in &want {
                if !have.contains_key(&(id.clone(), *k)) {
                    started.push((*k, self.start(*k, picker.clone())?));
                }
            }
        }
        let backends: Vec<Backend> = new.backends.values().copied().collect();
        picker.set(&backends);
        let mut have = self.listeners.lock();
        have.retain(|(s, k), _| *s != id || want.contains(k));
        for (k, l) in started {
            have.insert((id.clone(), k), l);
        }
        Ok(())
    }

    fn replace_all(&self, all: &[&ServiceState]) -> Result<()> {
        self.listeners.lock().clear();
        self.pickers.lock().clear();
        for s in all {
            self.apply(Change {
                old: None,
                new: Some(s),
            })?;
        }
        Ok(())
    }
}
