//! The manager's network allocator: IPAM and VNIs driven by the objects of
//! `swarm_api::v1` (networks, tasks, services, nodes).
//!
//! The manager keeps every allocation in its replicated store: a network's
//! `ipam` (allocated subnets and gateways) and `driver_state.options` (its
//! VNI under [`VNI_OPTION`]), each task's `networks[].addresses`, each
//! node's ingress `attachments[].addresses`, each service's
//! `endpoint.virtual_ips`. A new leader rebuilds the allocator from those
//! objects with [`NetworkAllocator::rebuild`] (or from a persisted
//! [`AllocatorState`]) before it allocates anything, so no subnet, address
//! or VNI is handed out twice.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use swarm_api::net::Cidr;
use swarm_api::v1;

use crate::ipam::{
    Family, Ipam, IpamConfig, IpamError, IpamState, NetworkIpam, Owner, SubnetRequest,
};
use crate::vni::{VniAllocator, VniError, VniState};

/// Driver option holding a network's VXLAN id (SwarmKit's key; a comma
/// separated list there, of which the first is used).
pub const VNI_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// Driver option holding a network's MTU.
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";
/// Name of the overlay driver (also the default when a spec names none).
pub const OVERLAY_DRIVER: &str = "overlay";
/// Name of the default IPAM driver.
pub const DEFAULT_IPAM_DRIVER: &str = "default";

/// An allocation refusal. Nothing was allocated when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// Subnets or addresses.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// VXLAN ids.
    #[error(transparent)]
    Vni(#[from] VniError),
    /// A driver option does not parse.
    #[error("network option {key}={value:?}: {reason}")]
    BadOption {
        /// Option key.
        key: String,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// An address string on an object does not parse.
    #[error("address {value:?}: {reason}")]
    BadAddress {
        /// The text.
        value: String,
        /// Why.
        reason: String,
    },
    /// An attachment names no network.
    #[error("a network attachment of {0} carries no network")]
    NoNetwork(String),
    /// A network is already allocated.
    #[error("network {0} is already allocated")]
    AlreadyAllocated(String),
}

/// Where a conflict found while rebuilding came from, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreConflict {
    /// `network <id>`, `task <id>`, `service <id>` or `node <id>`.
    pub object: String,
    /// What was wrong; the object's allocation was not recorded and should
    /// be redone.
    pub error: AllocError,
}

/// Everything the allocator holds, as plain data to persist.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AllocatorState {
    /// Subnets and addresses.
    pub ipam: IpamState,
    /// VNI of each overlay network.
    pub vnis: BTreeMap<String, u32>,
}

/// IPAM plus VNIs, with helpers over the API objects.
#[derive(Debug, Clone, Default)]
pub struct NetworkAllocator {
    ipam: Ipam,
    vnis: VniAllocator,
    network_vni: HashMap<String, u32>,
}

/// The VNI recorded in a network's driver state, if any.
pub fn network_vni(network: &v1::Network) -> Result<Option<u32>, AllocError> {
    let Some(state) = &network.driver_state else {
        return Ok(None);
    };
    option_vni(&state.options)
}

fn option_vni(options: &BTreeMap<String, String>) -> Result<Option<u32>, AllocError> {
    let Some(text) = options.get(VNI_OPTION) else {
        return Ok(None);
    };
    let first = text.split(',').next().unwrap_or_default().trim();
    first
        .parse::<u32>()
        .map(Some)
        .map_err(|e| AllocError::BadOption {
            key: VNI_OPTION.into(),
            value: text.clone(),
            reason: e.to_string(),
        })
}

/// The driver a network spec names (`overlay` when none).
pub fn driver_name(network: &v1::Network) -> &str {
    network
        .spec
        .as_ref()
        .and_then(|s| s.driver_config.as_ref())
        .map(|d| d.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or(OVERLAY_DRIVER)
}

fn needs_ipam(network: &v1::Network) -> bool {
    !matches!(driver_name(network), "host" | "null")
}

fn parse_ip(text: &str) -> Result<IpAddr, AllocError> {
    // Addresses are stored in CIDR form; a bare address is accepted too.
    let addr = text.split('/').next().unwrap_or_default();
    addr.parse::<IpAddr>().map_err(|e| AllocError::BadAddress {
        value: text.into(),
        reason: e.to_string(),
    })
}

impl NetworkAllocator {
    /// An empty allocator: subnets from `config`, VNIs from 4096.
    pub fn new(config: IpamConfig) -> NetworkAllocator {
        NetworkAllocator {
            ipam: Ipam::new(config),
            vnis: VniAllocator::default(),
            network_vni: HashMap::new(),
        }
    }

    /// Uses another VNI range (must be called before allocating).
    pub fn with_vni_allocator(mut self, vnis: VniAllocator) -> NetworkAllocator {
        self.vnis = vnis;
        self
    }

    /// Resumes from a persisted state.
    pub fn restore(
        config: IpamConfig,
        vnis: VniAllocator,
        state: AllocatorState,
    ) -> Result<NetworkAllocator, AllocError> {
        let ipam = Ipam::restore(config, state.ipam)?;
        let used = VniState {
            used: state.vnis.values().copied().collect(),
        };
        if used.used.len() != state.vnis.len() {
            let dup = state
                .vnis
                .values()
                .find(|v| state.vnis.values().filter(|w| w == v).count() > 1)
                .copied()
                .unwrap_or_default();
            return Err(VniError::InUse(dup).into());
        }
        Ok(NetworkAllocator {
            ipam,
            vnis: vnis.restore(&used)?,
            network_vni: state.vnis.into_iter().collect(),
        })
    }

    /// The state to persist.
    pub fn state(&self) -> AllocatorState {
        AllocatorState {
            ipam: self.ipam.state().clone(),
            vnis: self
                .network_vni
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    /// Rebuilds the allocator from the objects in the store: networks first,
    /// then every address they hand out. Objects whose allocation conflicts
    /// (an address held twice, a subnet overlapping another network's) are
    /// reported and skipped, so the caller can reallocate them.
    pub fn rebuild(
        config: IpamConfig,
        networks: &[v1::Network],
        services: &[v1::Service],
        tasks: &[v1::Task],
        nodes: &[v1::Node],
    ) -> (NetworkAllocator, Vec<RestoreConflict>) {
        let mut a = NetworkAllocator::new(config);
        let mut conflicts = Vec::new();
        let mut note = |object: String, r: Result<(), AllocError>| {
            if let Err(error) = r {
                conflicts.push(RestoreConflict { object, error });
            }
        };
        for n in networks {
            note(format!("network {}", n.id), a.restore_network(n));
        }
        for s in services {
            note(format!("service {}", s.id), a.restore_service(s));
        }
        for t in tasks {
            note(format!("task {}", t.id), a.restore_task(t));
        }
        for n in nodes {
            note(
                format!("node {}", n.id),
                a.restore_attachments(&n.id, &n.attachments),
            );
        }
        (a, conflicts)
    }

    /// The IPAM allocator.
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The VNI of an allocated overlay network.
    pub fn vni_of(&self, network_id: &str) -> Option<u32> {
        self.network_vni.get(network_id).copied()
    }

    /// True when the network has been allocated (or restored).
    pub fn is_allocated(&self, network_id: &str) -> bool {
        self.ipam.network(network_id).is_some() || self.network_vni.contains_key(network_id)
    }

    /// Allocates a new network: subnets from its spec's `ipam` (or the
    /// pools), and for an overlay network a VNI (the one its spec's driver
    /// options ask for under [`VNI_OPTION`], else the lowest free). Fills
    /// `network.ipam` and `network.driver_state`. All or nothing.
    pub fn allocate_network(&mut self, network: &mut v1::Network) -> Result<(), AllocError> {
        if self.is_allocated(&network.id) {
            return Err(AllocError::AlreadyAllocated(network.id.clone()));
        }
        let spec = network.spec.clone().unwrap_or_default();
        let overlay = driver_name(network) == OVERLAY_DRIVER;
        let requested_vni = match &spec.driver_config {
            Some(d) => option_vni(&d.options)?,
            None => None,
        };
        let vni = if overlay {
            Some(self.vnis.allocate(requested_vni)?)
        } else {
            None
        };
        let result = self.allocate_subnets(network, &spec);
        if result.is_err()
            && let Some(v) = vni
        {
            self.vnis.release(v);
        }
        let ipam = result?;
        let mut options: BTreeMap<String, String> =
            spec.driver_config.map(|d| d.options).unwrap_or_default();
        if let Some(v) = vni {
            options.insert(VNI_OPTION.into(), v.to_string());
            self.network_vni.insert(network.id.clone(), v);
        }
        network.driver_state = Some(v1::NetworkDriverState {
            name: driver_name(network).to_string(),
            options,
        });
        network.ipam = ipam;
        Ok(())
    }

    fn allocate_subnets(
        &mut self,
        network: &v1::Network,
        spec: &v1::NetworkSpec,
    ) -> Result<Option<v1::IpamOptions>, AllocError> {
        if !needs_ipam(network) {
            return Ok(None);
        }
        let mut requests = Vec::new();
        if let Some(ipam) = &spec.ipam {
            for c in &ipam.configs {
                requests.push(SubnetRequest::from_config(c)?);
            }
        }
        if requests.is_empty() {
            requests.push(SubnetRequest::from_pool(Family::V4));
        }
        if spec.ipv6_enabled && !requests.iter().any(|r| r.family == Some(Family::V6)) {
            requests.push(SubnetRequest::from_pool(Family::V6));
        }
        let net = self.ipam.allocate_network(&network.id, &requests)?;
        let driver = spec
            .ipam
            .as_ref()
            .and_then(|i| i.driver.clone())
            .unwrap_or_else(|| v1::Driver {
                name: DEFAULT_IPAM_DRIVER.into(),
                options: BTreeMap::new(),
            });
        Ok(Some(ipam_options(net, driver)))
    }

    /// Records an allocated network found in the store (its `ipam` and VNI).
    pub fn restore_network(&mut self, network: &v1::Network) -> Result<(), AllocError> {
        if self.is_allocated(&network.id) {
            return Err(AllocError::AlreadyAllocated(network.id.clone()));
        }
        let vni = if driver_name(network) == OVERLAY_DRIVER {
            network_vni(network)?
        } else {
            None
        };
        if let Some(v) = vni {
            self.vnis.mark(v)?;
        }
        let mut requests = Vec::new();
        for c in network.ipam.iter().flat_map(|i| &i.configs) {
            requests.push(SubnetRequest::from_config(c)?);
        }
        if !requests.is_empty()
            && let Err(e) = self.ipam.restore_network(&network.id, &requests)
        {
            if let Some(v) = vni {
                self.vnis.release(v);
            }
            return Err(e.into());
        }
        if let Some(v) = vni {
            self.network_vni.insert(network.id.clone(), v);
        }
        Ok(())
    }

    /// Releases a network: its subnets, every address in them, its VNI.
    pub fn release_network(&mut self, network_id: &str) -> bool {
        let had_ipam = self.ipam.release_network(network_id);
        let vni = self.network_vni.remove(network_id);
        if let Some(v) = vni {
            self.vnis.release(v);
        }
        had_ipam || vni.is_some()
    }

    /// Allocates the addresses of one endpoint (task or node) on a network,
    /// honouring requested addresses (CIDR or bare), and returns them in
    /// CIDR form (`10.0.0.5/24`). Idempotent per owner.
    pub fn allocate_endpoint(
        &mut self,
        network_id: &str,
        endpoint_id: &str,
        requested: &[String],
    ) -> Result<Vec<String>, AllocError> {
        let requested = requested
            .iter()
            .map(|r| parse_ip(r))
            .collect::<Result<Vec<_>, _>>()?;
        let got = self.ipam.allocate_address(
            network_id,
            Owner::Endpoint(endpoint_id.into()),
            &requested,
        )?;
        Ok(got.iter().map(Cidr::to_string).collect())
    }

    /// Fills the addresses of every network attachment of a task that has
    /// none (requested addresses come from the task spec's attachment with
    /// the same network id). All or nothing.
    pub fn allocate_task(&mut self, task: &mut v1::Task) -> Result<(), AllocError> {
        let requested: HashMap<String, Vec<String>> = task
            .spec
            .iter()
            .flat_map(|s| &s.networks)
            .map(|n| (n.target.clone(), n.addresses.clone()))
            .collect();
        let mut done: Vec<(usize, String, Vec<String>)> = Vec::new();
        for (i, a) in task.networks.iter().enumerate() {
            let result = match a.network.as_ref() {
                None => Err(AllocError::NoNetwork(format!("task {}", task.id))),
                Some(net) if !a.addresses.is_empty() || !needs_ipam(net) => continue,
                Some(net) => {
                    let want = requested.get(&net.id).cloned().unwrap_or_default();
                    self.allocate_endpoint(&net.id, &task.id, &want)
                        .map(|addrs| (net.id.clone(), addrs))
                }
            };
            match result {
                Ok((net_id, addrs)) => done.push((i, net_id, addrs)),
                Err(e) => {
                    for (_, net_id, _) in &done {
                        self.ipam
                            .release_owner(net_id, &Owner::Endpoint(task.id.clone()));
                    }
                    return Err(e);
                }
            }
        }
        for (i, _, addrs) in done {
            task.networks[i].addresses = addrs;
        }
        Ok(())
    }

    /// Records the addresses of a task found in the store.
    pub fn restore_task(&mut self, task: &v1::Task) -> Result<(), AllocError> {
        self.restore_attachments(&task.id, &task.networks)
    }

    /// Records the addresses of attachments (a task's or a node's) owned by
    /// `endpoint_id`.
    pub fn restore_attachments(
        &mut self,
        endpoint_id: &str,
        attachments: &[v1::NetworkAttachment],
    ) -> Result<(), AllocError> {
        for a in attachments {
            let net = a
                .network
                .as_ref()
                .ok_or_else(|| AllocError::NoNetwork(endpoint_id.to_string()))?;
            for addr in &a.addresses {
                let ip = parse_ip(addr)?;
                self.ipam
                    .restore_address(&net.id, Owner::Endpoint(endpoint_id.into()), ip)?;
            }
        }
        Ok(())
    }

    /// Releases the addresses of a task (or node) on every network it is
    /// attached to.
    pub fn release_task(&mut self, task: &v1::Task) {
        self.release_attachments(&task.id, &task.networks);
    }

    /// Releases the addresses `endpoint_id` holds on the attachments' networks.
    pub fn release_attachments(
        &mut self,
        endpoint_id: &str,
        attachments: &[v1::NetworkAttachment],
    ) {
        for a in attachments {
            if let Some(net) = &a.network {
                self.ipam
                    .release_owner(&net.id, &Owner::Endpoint(endpoint_id.into()));
            }
        }
    }

    /// Allocates (or returns) a service's VIP on a network, in CIDR form.
    pub fn allocate_vip(
        &mut self,
        network_id: &str,
        service_id: &str,
    ) -> Result<String, AllocError> {
        let got = self
            .ipam
            .allocate_address(network_id, Owner::Vip(service_id.into()), &[])?;
        // One address per family; a VIP uses the first (IPv4 when present).
        got.first()
            .map(Cidr::to_string)
            .ok_or_else(|| AllocError::Ipam(IpamError::UnknownNetwork(network_id.into())))
    }

    /// Sets a service's `endpoint.virtual_ips` to one VIP per network in
    /// `network_ids` (allocating the missing ones, releasing those of
    /// networks no longer listed). All or nothing.
    pub fn allocate_service(
        &mut self,
        service: &mut v1::Service,
        network_ids: &[String],
    ) -> Result<(), AllocError> {
        let endpoint = service.endpoint.get_or_insert_with(Default::default);
        let mut vips = Vec::new();
        let mut fresh = Vec::new();
        for net in network_ids {
            if let Some(v) = endpoint.virtual_ips.iter().find(|v| &v.network_id == net) {
                vips.push(v.clone());
                continue;
            }
            match self.allocate_vip(net, &service.id) {
                Ok(addr) => {
                    fresh.push(net.clone());
                    vips.push(v1::VirtualIp {
                        network_id: net.clone(),
                        addr,
                    });
                }
                Err(e) => {
                    for n in &fresh {
                        self.ipam.release_owner(n, &Owner::Vip(service.id.clone()));
                    }
                    return Err(e);
                }
            }
        }
        for old in &endpoint.virtual_ips {
            if !network_ids.contains(&old.network_id) {
                self.ipam
                    .release_owner(&old.network_id, &Owner::Vip(service.id.clone()));
            }
        }
        endpoint.virtual_ips = vips;
        Ok(())
    }

    /// Records a service's VIPs found in the store.
    pub fn restore_service(&mut self, service: &v1::Service) -> Result<(), AllocError> {
        for v in service.endpoint.iter().flat_map(|e| &e.virtual_ips) {
            let ip = parse_ip(&v.addr)?;
            self.ipam
                .restore_address(&v.network_id, Owner::Vip(service.id.clone()), ip)?;
        }
        Ok(())
    }

    /// Releases every VIP of a service.
    pub fn release_service(&mut self, service: &v1::Service) {
        for v in service.endpoint.iter().flat_map(|e| &e.virtual_ips) {
            self.ipam
                .release_owner(&v.network_id, &Owner::Vip(service.id.clone()));
        }
    }
}

/// The `IpamOptions` a network object stores for its allocated subnets.
pub fn ipam_options(net: &NetworkIpam, driver: v1::Driver) -> v1::IpamOptions {
    v1::IpamOptions {
        driver: Some(driver),
        configs: net
            .subnets
            .iter()
            .map(|s| {
                let family = match s.family() {
                    Family::V4 => v1::AddressFamily::Ipv4,
                    Family::V6 => v1::AddressFamily::Ipv6,
                };
                v1::IpamConfig {
                    family: family.into(),
                    subnet: s.subnet.to_string(),
                    range: s.range.map(|r| r.to_string()).unwrap_or_default(),
                    gateway: s.gateway.to_string(),
                    reserved: s
                        .reserved
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
