//! The VXLAN overlay driver, built the way Docker's overlay driver builds
//! it, with every kernel object made over rtnetlink.
//!
//! Per network, a namespace `<prefix>-<vni>` holds a bridge `br0` (carrying
//! the subnets' gateway addresses) and a VXLAN device `vxlan0` enslaved to
//! it. `vxlan0` is created from the host namespace straight into the network
//! namespace, so its UDP socket (port 4789 by default) stays on the host,
//! bound to the node's data-path address, while the overlay's layer 2 is
//! isolated from the host and from other networks. It has learning off and
//! ARP/ND proxying on: every remote endpoint gets a static neighbour entry
//! (IP -> MAC) and a static FDB entry (MAC -> the remote node's underlay
//! address), so nothing is flooded or learned.
//!
//! Per endpoint, a veth pair is created with its inner end directly in the
//! task's namespace (moving a link between namespaces costs ~20 ms) and its
//! outer end on `br0`; the inner end gets the task's MAC (derived from its
//! IP), addresses, and optionally a default route.
//!
//! Bridge and outer veth ends carry an alias naming the network and the
//! endpoint, so [`VxlanDriver::new`] rebuilds the driver's books from the
//! kernel after an agent restart and removes what it cannot account for.

pub(crate) mod alias;
mod bridge_nf;
mod config;
mod endpoint;
mod network;
mod peer;
mod recover;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use rtnetlink::Handle;

pub use config::{DEFAULT_PREFIX, VxlanConfig, VxlanConfigBuilder};

pub(crate) use alias::valid_id;

use crate::driver::{
    DriverFuture, DriverState, EndpointInfo, JoinRequest, NetworkConfig, NetworkDriver,
    NetworkState, Peer,
};
use crate::error::{DriverError, Result};
use crate::netns::Netns;
use crate::nl;

/// Name of the bridge inside a network namespace.
pub const BRIDGE_NAME: &str = "br0";
/// Name of the VXLAN device inside a network namespace.
pub const VXLAN_NAME: &str = "vxlan0";

/// One network as built on this node.
#[derive(Debug)]
struct NetRt {
    config: NetworkConfig,
    mtu: u32,
    ns: Netns,
    h: Handle,
    bridge: u32,
    vxlan: u32,
    inner: Mutex<NetInner>,
    /// Serialises peer updates of the network.
    peer_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct NetInner {
    deleted: bool,
    endpoints: BTreeMap<String, Slot>,
    peers: BTreeMap<IpAddr, Peer>,
}

#[derive(Debug, Clone)]
enum Slot {
    /// A join in progress.
    Pending,
    /// A joined endpoint and the name of its outer veth end.
    Ready(EndpointInfo, String),
}

/// The VXLAN driver. See the [module docs](self).
#[derive(Debug)]
pub struct VxlanDriver {
    cfg: VxlanConfig,
    host: Handle,
    nets: Mutex<HashMap<String, Arc<NetRt>>>,
    /// Serialises network creation and deletion.
    ops: tokio::sync::Mutex<()>,
    /// Veths of endpoints that left, being deleted in the background:
    /// outer name -> (network id, the deletion).
    reaping: Arc<Mutex<HashMap<String, Reaping>>>,
    next_reap: std::sync::atomic::AtomicU64,
}

/// A background link deletion that several waiters can await.
type Reap = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// A deletion in progress: its network, its sequence number, the deletion.
type Reaping = (String, u64, Reap);

impl VxlanDriver {
    /// Starts the driver: connects to netlink in the host namespace and
    /// recovers the networks, endpoints and peers a previous run left
    /// (see [`VxlanDriver::state`]), removing leftovers it cannot account
    /// for. Needs a tokio runtime and `CAP_NET_ADMIN` + `CAP_SYS_ADMIN`.
    pub async fn new(cfg: VxlanConfig) -> Result<VxlanDriver> {
        let host_ns = match &cfg.host_netns {
            Some(p) => Some(Netns::open(p)?),
            None => None,
        };
        let host = nl::connect(host_ns.as_ref()).await?;
        let drv = VxlanDriver {
            cfg,
            host,
            nets: Mutex::new(HashMap::new()),
            ops: tokio::sync::Mutex::new(()),
            reaping: Arc::new(Mutex::new(HashMap::new())),
            next_reap: std::sync::atomic::AtomicU64::new(0),
        };
        recover::recover(&drv).await?;
        Ok(drv)
    }

    /// The configuration.
    pub fn config(&self) -> &VxlanConfig {
        &self.cfg
    }

    /// Path of the namespace of a network on this node, if it exists
    /// (for diagnostics: `ip netns exec <name> bridge fdb`).
    pub fn network_netns(&self, network_id: &str) -> Option<std::path::PathBuf> {
        self.nets
            .lock()
            .get(network_id)
            .map(|n| n.ns.path().to_path_buf())
    }

    /// Waits until the interfaces of every endpoint that left are gone from
    /// the kernel. `leave` returns once the endpoint is disconnected; the
    /// kernel's removal of the veth pair (20-30 ms here, bound by RCU grace
    /// periods in `unregister_netdevice`) finishes in the background.
    pub async fn settle(&self) {
        let all: Vec<Reap> = self
            .reaping
            .lock()
            .values()
            .map(|(_, _, r)| r.clone())
            .collect();
        futures::future::join_all(all).await;
    }

    /// Waits for the background deletions of one network, or of one name.
    async fn settle_where(&self, f: impl Fn(&str, &str) -> bool) {
        let some: Vec<Reap> = self
            .reaping
            .lock()
            .iter()
            .filter(|(name, (net, _, _))| f(name, net))
            .map(|(_, (_, _, r))| r.clone())
            .collect();
        futures::future::join_all(some).await;
    }

    fn net(&self, id: &str) -> Result<Arc<NetRt>> {
        self.nets
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| DriverError::UnknownNetwork(id.to_string()))
    }

    fn is_local_vtep(&self, ip: &IpAddr) -> bool {
        *ip == self.cfg.data_path_addr
    }

    /// Snapshot of the books.
    fn snapshot(&self) -> DriverState {
        let nets: Vec<Arc<NetRt>> = self.nets.lock().values().cloned().collect();
        let mut networks: Vec<NetworkState> = nets
            .iter()
            .map(|n| {
                let inner = n.inner.lock();
                NetworkState {
                    config: n.config.clone(),
                    endpoints: inner
                        .endpoints
                        .values()
                        .filter_map(|s| match s {
                            Slot::Ready(info, _) => Some(info.clone()),
                            Slot::Pending => None,
                        })
                        .collect(),
                    peers: inner.peers.values().copied().collect(),
                }
            })
            .collect();
        networks.sort_by(|a, b| a.config.id.cmp(&b.config.id));
        DriverState { networks }
    }
}

impl NetworkDriver for VxlanDriver {
    fn name(&self) -> &'static str {
        crate::allocator::OVERLAY_DRIVER
    }

    fn create_network<'a>(&'a self, network: &'a NetworkConfig) -> DriverFuture<'a, ()> {
        Box::pin(network::create(self, network))
    }

    fn delete_network<'a>(&'a self, network_id: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(network::delete(self, network_id))
    }

    fn join<'a>(&'a self, request: &'a JoinRequest) -> DriverFuture<'a, EndpointInfo> {
        Box::pin(endpoint::join(self, request))
    }

    fn leave<'a>(&'a self, network_id: &'a str, endpoint_id: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(endpoint::leave(self, network_id, endpoint_id))
    }

    fn add_peer<'a>(&'a self, network_id: &'a str, peer: &'a Peer) -> DriverFuture<'a, ()> {
        Box::pin(peer::add(self, network_id, peer))
    }

    fn remove_peer<'a>(&'a self, network_id: &'a str, peer: &'a Peer) -> DriverFuture<'a, ()> {
        Box::pin(peer::remove(self, network_id, peer))
    }

    fn state(&self) -> DriverFuture<'_, DriverState> {
        Box::pin(async move { Ok(self.snapshot()) })
    }
}
