//! A driver that builds nothing: for process-only workers whose tasks share
//! the host's network. It still keeps the books (networks, endpoints,
//! peers) and checks requests like the real driver, so an agent behaves the
//! same on either.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::driver::{
    DriverFuture, DriverState, EndpointInfo, JoinRequest, NetworkConfig, NetworkDriver,
    NetworkState, Peer,
};
use crate::error::DriverError;

#[derive(Debug, Default)]
struct Books {
    networks: BTreeMap<String, Net>,
}

#[derive(Debug)]
struct Net {
    config: NetworkConfig,
    endpoints: BTreeMap<String, EndpointInfo>,
    peers: BTreeMap<std::net::IpAddr, Peer>,
}

/// The no-op driver. See the [module docs](self).
#[derive(Debug, Default)]
pub struct NoopDriver {
    books: Mutex<Books>,
}

impl NoopDriver {
    /// A driver with nothing on it.
    pub fn new() -> NoopDriver {
        NoopDriver::default()
    }

    fn create(&self, cfg: &NetworkConfig) -> Result<(), DriverError> {
        cfg.validate()?;
        let mut b = self.books.lock();
        if let Some((id, _)) = b
            .networks
            .iter()
            .find(|(id, n)| n.config.vni == cfg.vni && **id != cfg.id)
        {
            return Err(DriverError::VniInUse {
                vni: cfg.vni,
                network: id.clone(),
            });
        }
        if let Some(n) = b.networks.get_mut(&cfg.id) {
            if n.config == *cfg {
                return Ok(());
            }
            if !n.endpoints.is_empty() {
                return Err(DriverError::NetworkConflict {
                    network: cfg.id.clone(),
                    reason: "it has endpoints".into(),
                });
            }
        }
        b.networks.insert(
            cfg.id.clone(),
            Net {
                config: cfg.clone(),
                endpoints: BTreeMap::new(),
                peers: BTreeMap::new(),
            },
        );
        Ok(())
    }

    fn join_sync(&self, req: &JoinRequest) -> Result<EndpointInfo, DriverError> {
        let mut b = self.books.lock();
        let net = b
            .networks
            .get_mut(&req.network_id)
            .ok_or_else(|| DriverError::UnknownNetwork(req.network_id.clone()))?;
        req.validate(&net.config)?;
        let mac = req.mac().ok_or_else(|| {
            DriverError::Invalid(format!("endpoint {}: no address", req.endpoint_id))
        })?;
        let info = EndpointInfo {
            network_id: req.network_id.clone(),
            endpoint_id: req.endpoint_id.clone(),
            ifname: req.ifname.clone(),
            mac,
            addresses: req.addresses.clone(),
        };
        if let Some(old) = net.endpoints.get(&req.endpoint_id) {
            if *old == info {
                return Ok(info);
            }
            return Err(DriverError::EndpointConflict {
                endpoint: req.endpoint_id.clone(),
                network: req.network_id.clone(),
            });
        }
        let clash = net
            .endpoints
            .values()
            .flat_map(|e| &e.addresses)
            .find(|a| req.addresses.iter().any(|r| r.addr() == a.addr()));
        if let Some(a) = clash {
            return Err(DriverError::AddressInUse(a.addr()));
        }
        net.endpoints.insert(req.endpoint_id.clone(), info.clone());
        Ok(info)
    }

    fn with_net<T>(&self, id: &str, f: impl FnOnce(&mut Net) -> T) -> Result<T, DriverError> {
        let mut b = self.books.lock();
        let net = b
            .networks
            .get_mut(id)
            .ok_or_else(|| DriverError::UnknownNetwork(id.to_string()))?;
        Ok(f(net))
    }
}

impl NetworkDriver for NoopDriver {
    fn name(&self) -> &'static str {
        "null"
    }

    fn create_network<'a>(&'a self, network: &'a NetworkConfig) -> DriverFuture<'a, ()> {
        Box::pin(async move { self.create(network) })
    }

    fn delete_network<'a>(&'a self, network_id: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let mut b = self.books.lock();
            if let Some(n) = b.networks.get(network_id)
                && !n.endpoints.is_empty()
            {
                return Err(DriverError::NetworkInUse {
                    network: network_id.to_string(),
                    count: n.endpoints.len(),
                });
            }
            b.networks.remove(network_id);
            Ok(())
        })
    }

    fn join<'a>(&'a self, request: &'a JoinRequest) -> DriverFuture<'a, EndpointInfo> {
        Box::pin(async move { self.join_sync(request) })
    }

    fn leave<'a>(&'a self, network_id: &'a str, endpoint_id: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.with_net(network_id, |n| {
                n.endpoints.remove(endpoint_id);
            })
        })
    }

    fn add_peer<'a>(&'a self, network_id: &'a str, peer: &'a Peer) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.with_net(network_id, |n| {
                if n.config.subnet_of(&peer.ip).is_none() {
                    return Err(DriverError::Invalid(format!(
                        "peer {} is outside the subnets of network {network_id}",
                        peer.ip
                    )));
                }
                n.peers.insert(peer.ip, *peer);
                Ok(())
            })?
        })
    }

    fn remove_peer<'a>(&'a self, network_id: &'a str, peer: &'a Peer) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.with_net(network_id, |n| {
                if n.peers.get(&peer.ip) == Some(peer) {
                    n.peers.remove(&peer.ip);
                }
            })
        })
    }

    fn state(&self) -> DriverFuture<'_, DriverState> {
        Box::pin(async move {
            let b = self.books.lock();
            Ok(DriverState {
                networks: b
                    .networks
                    .values()
                    .map(|n| NetworkState {
                        config: n.config.clone(),
                        endpoints: n.endpoints.values().cloned().collect(),
                        peers: n.peers.values().copied().collect(),
                    })
                    .collect(),
            })
        })
    }
}
