//! Attaching and detaching tasks, creating and removing the bridge.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd};

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth};
use swarm_api::net::Cidr;

use super::nft::{self, Render};
use super::{
    GW_NET, GatewayAttach, GatewayBridge, GatewayConfig, GatewayEndpoint, GwState, PortMapping,
};
use crate::driver::check_ifname;
use crate::error::{DriverError, Result};
use crate::ipam::{Ipam, IpamConfig, Owner, SubnetRequest};
use crate::mac::MacAddr;
use crate::netns::Netns;
use crate::nl;
use crate::vxlan::alias;

const BRIDGE_ALIAS: &str = "swarm-overlay gwbridge";

fn outer_name(endpoint_id: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in endpoint_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("gw{h:08x}")
}

fn fresh_ipam(cfg: &GatewayConfig) -> Result<Ipam> {
    let mut ipam = Ipam::new(IpamConfig::default());
    ipam.restore_network(
        GW_NET,
        &[SubnetRequest::explicit(cfg.subnet).with_gateway(cfg.gateway())],
    )?;
    Ok(ipam)
}

impl GatewayBridge {
    /// Connects to the host namespace and recovers a bridge a previous run
    /// left (its tasks from the veth aliases, their ports from the
    /// nftables comments). A bridge left with no task is removed.
    pub async fn new(cfg: GatewayConfig) -> Result<GatewayBridge> {
        let host_ns = match &cfg.host_netns {
            Some(p) => Some(Netns::open(p)?),
            None => None,
        };
        let host = nl::connect(host_ns.as_ref()).await?;
        let ipam = fresh_ipam(&cfg)?;
        let gw = GatewayBridge {
            cfg,
            host,
            host_ns,
            st: tokio::sync::Mutex::new(GwState {
                bridge: None,
                ipam,
                endpoints: BTreeMap::new(),
            }),
        };
        gw.recover().await?;
        Ok(gw)
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// True while the bridge exists (some task is attached).
    pub async fn is_active(&self) -> bool {
        self.st.lock().await.bridge.is_some()
    }

    /// The attached tasks.
    pub async fn endpoints(&self) -> Vec<GatewayEndpoint> {
        self.st
            .lock()
            .await
            .endpoints
            .values()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Attaches a task: creates the bridge if this is the first, gives the
    /// task an address and its default route via the bridge, publishes its
    /// ports. Attaching again with the same interface updates the ports.
    pub async fn attach(&self, req: &GatewayAttach) -> Result<GatewayEndpoint> {
        if !crate::vxlan::valid_id(&req.endpoint_id) {
            return Err(DriverError::Invalid(format!(
                "endpoint id {:?}",
                req.endpoint_id
            )));
        }
        check_ifname(&req.ifname).map_err(DriverError::Invalid)?;
        let mut st = self.st.lock().await;
        for (id, (e, _)) in &st.endpoints {
            if *id == req.endpoint_id {
                continue;
            }
            if let Some(p) = req.ports.iter().find(|p| {
                e.ports
                    .iter()
                    .any(|q| q.protocol == p.protocol && q.published == p.published)
            }) {
                return Err(DriverError::Invalid(format!(
                    "port {:?}/{} is already published by endpoint {id}",
                    p.protocol, p.published
                )));
            }
        }
        for (i, p) in req.ports.iter().enumerate() {
            if p.published == 0 || p.target == 0 {
                return Err(DriverError::Invalid(format!(
                    "port mapping {p:?} has a zero port"
                )));
            }
            if req.ports[..i]
                .iter()
                .any(|q| q.protocol == p.protocol && q.published == p.published)
            {
                return Err(DriverError::Invalid(format!(
                    "port {:?}/{} is given twice",
                    p.protocol, p.published
                )));
            }
        }
        if let Some((e, _)) = st.endpoints.get_mut(&req.endpoint_id) {
            if e.ifname != req.ifname {
                return Err(DriverError::EndpointConflict {
                    endpoint: req.endpoint_id.clone(),
                    network: self.cfg.bridge.clone(),
                });
            }
            let old = std::mem::replace(&mut e.ports, req.ports.clone());
            let updated = e.clone();
            if let Err(err) = self.apply_rules(&st).await {
                if let Some((e, _)) = st.endpoints.get_mut(&req.endpoint_id) {
                    e.ports = old;
                }
                return Err(err);
            }
            return Ok(updated);
        }

        let created = st.bridge.is_none();
        if created {
            st.bridge = Some(self.create_bridge().await?);
        }
        let r = self.plumb(&mut st, req).await;
        match r {
            Ok(ep) => Ok(ep),
            Err(e) => {
                if created && st.endpoints.is_empty() {
                    let _ = self.remove_bridge(&mut st).await;
                }
                Err(e)
            }
        }
    }

    async fn plumb(&self, st: &mut GwState, req: &GatewayAttach) -> Result<GatewayEndpoint> {
        let bridge = st.bridge.unwrap_or_default();
        let addr = st
            .ipam
            .allocate_address(GW_NET, Owner::Endpoint(req.endpoint_id.clone()), &[])?
            .into_iter()
            .next()
            .ok_or_else(|| DriverError::Invalid("no address allocated".into()))?;
        let ep = GatewayEndpoint {
            endpoint_id: req.endpoint_id.clone(),
            ifname: req.ifname.clone(),
            address: addr,
            mac: MacAddr::from_ip(addr.addr()),
            gateway: self.cfg.gateway(),
            ports: req.ports.clone(),
        };
        let outer = outer_name(&req.endpoint_id);
        let r = self.make_veth(bridge, req, &ep, &outer).await;
        if let Err(e) = r {
            st.ipam
                .release_owner(GW_NET, &Owner::Endpoint(req.endpoint_id.clone()));
            return Err(e);
        }
        st.endpoints
            .insert(req.endpoint_id.clone(), (ep.clone(), outer.clone()));
        if let Err(e) = self.apply_rules(st).await {
            st.endpoints.remove(&req.endpoint_id);
            st.ipam
                .release_owner(GW_NET, &Owner::Endpoint(req.endpoint_id.clone()));
            let _ = nl::delete_link_by_name(&self.host, &outer).await;
            return Err(e);
        }
        Ok(ep)
    }

    async fn make_veth(
        &self,
        bridge: u32,
        req: &GatewayAttach,
        ep: &GatewayEndpoint,
        outer: &str,
    ) -> Result<()> {
        let task_ns = req.netns.open()?;
        let peer = nl::peer_builder(&req.ifname)
            .mtu(self.cfg.mtu)
            .address(ep.mac.octets().to_vec())
            .setns_by_fd(task_ns.as_fd().as_raw_fd())
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(outer.to_string())
            .mtu(self.cfg.mtu)
            .controller(bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        if let Err(e) = self.host.link().add(veth).execute().await {
            if nl::errno(&e) == Some(nl::EEXIST) {
                let outer_taken = matches!(nl::link_by_name(&self.host, outer).await, Ok(Some(_)));
                return Err(DriverError::NameTaken {
                    what: "interface",
                    name: if outer_taken {
                        outer.to_string()
                    } else {
                        req.ifname.clone()
                    },
                    place: if outer_taken {
                        "on the host".into()
                    } else {
                        "in the task's network namespace".into()
                    },
                });
            }
            return Err(nl::ctx(format!(
                "creating veth {outer}/{} on {}",
                req.ifname, self.cfg.bridge
            ))(e));
        }
        let inside = async {
            let th = nl::connect(Some(&task_ns)).await?;
            let what = format!("{} in the task's namespace", req.ifname);
            let index = nl::link_by_name(&th, &req.ifname)
                .await?
                .map(|m| m.header.index)
                .ok_or_else(|| DriverError::Invalid(format!("{what} vanished")))?;
            nl::add_address(&th, index, &ep.address, &what).await?;
            th.link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(nl::ctx(format!("bringing {what} up")))?;
            nl::loopback_up(&th).await?;
            nl::set_default_route(&th, ep.gateway, "the task's namespace").await
        };
        let alias = nl::set_alias(
            &self.host,
            outer,
            alias::endpoint(&req.endpoint_id, &req.ifname, &[ep.address]),
        );
        if let Err(e) = futures::future::try_join(alias, inside).await {
            let _ = nl::delete_link_by_name(&self.host, outer).await;
            return Err(e);
        }
        Ok(())
    }

    /// Detaches a task: removes its interface, address and ports; removes
    /// the bridge and its table when it was the last. Detaching an unknown
    /// task succeeds.
    pub async fn detach(&self, endpoint_id: &str) -> Result<()> {
        let mut st = self.st.lock().await;
        let Some((_, outer)) = st.endpoints.get(endpoint_id).cloned() else {
            return Ok(());
        };
        let msg = LinkUnspec::new_with_name(&outer).build();
        match self.host.link().del_with_message(msg).execute().await {
            Err(e) if !matches!(nl::errno(&e), Some(nl::ENODEV) | Some(nl::ENOENT)) => {
                return Err(nl::ctx(format!("deleting veth {outer}"))(e));
            }
            _ => {}
        }
        st.endpoints.remove(endpoint_id);
        st.ipam
            .release_owner(GW_NET, &Owner::Endpoint(endpoint_id.to_string()));
        if st.endpoints.is_empty() {
            self.remove_bridge(&mut st).await
        } else {
            self.apply_rules(&st).await
        }
    }

    async fn create_bridge(&self) -> Result<u32> {
        let name = &self.cfg.bridge;
        if let Some(existing) = nl::link_by_name(&self.host, name).await? {
            if nl::link_alias(&existing) == Some(BRIDGE_ALIAS) {
                return Ok(existing.header.index);
            }
            return Err(DriverError::NameTaken {
                what: "interface",
                name: name.clone(),
                place: "on the host (not a gateway bridge of ours)".into(),
            });
        }
        let msg = LinkBridge::new(name).mtu(self.cfg.mtu).up().build();
        self.host
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(nl::ctx(format!("creating bridge {name}")))?;
        let index = nl::link_by_name(&self.host, name)
            .await?
            .map(|m| m.header.index)
            .ok_or_else(|| DriverError::Invalid(format!("bridge {name} vanished")))?;
        let setup = async {
            nl::set_alias(&self.host, name, BRIDGE_ALIAS.to_string()).await?;
            let gw = Cidr::new(self.cfg.gateway(), self.cfg.subnet.prefix())
                .map_err(|e| DriverError::Invalid(e.to_string()))?;
            nl::add_address(&self.host, index, &gw, name).await?;
            self.enable_forwarding().await
        };
        if let Err(e) = setup.await {
            let _ = nl::delete_link(&self.host, index, name).await;
            return Err(e);
        }
        Ok(index)
    }

    async fn remove_bridge(&self, st: &mut GwState) -> Result<()> {
        let r1 = match st.bridge.take() {
            Some(i) => nl::delete_link(&self.host, i, &self.cfg.bridge).await,
            None => Ok(()),
        };
        let table = nft::remove(&self.cfg.table, self.cfg.subnet.is_ipv6());
        let r2 = self
            .nft_apply(table, "removing the gateway bridge's nftables table")
            .await;
        st.ipam = fresh_ipam(&self.cfg)?;
        r1.and(r2)
    }

    async fn enable_forwarding(&self) -> Result<()> {
        let path = if self.cfg.subnet.is_ipv6() {
            "/proc/sys/net/ipv6/conf/all/forwarding"
        } else {
            "/proc/sys/net/ipv4/ip_forward"
        };
        let write = move || std::fs::write(path, b"1");
        let r = match &self.host_ns {
            // /proc/sys/net is per namespace: write from a thread inside it.
            Some(ns) => ns.run_async(write).await?,
            None => write(),
        };
        r.map_err(|source| DriverError::Io {
            op: format!("enabling forwarding ({path})"),
            source,
        })
    }

    async fn apply_rules(&self, st: &GwState) -> Result<()> {
        let render = Render {
            table: &self.cfg.table,
            bridge: &self.cfg.bridge,
            subnet: self.cfg.subnet,
            icc: self.cfg.icc,
            endpoints: st
                .endpoints
                .values()
                .map(|(e, _)| (e.endpoint_id.as_str(), e.address.addr(), e.ports.as_slice()))
                .collect(),
        };
        self.nft_apply(
            nft::render(&render),
            "applying the gateway bridge's nftables rules",
        )
        .await
    }

    /// Runs `nft` in the host namespace (a child process inherits the
    /// namespace of the thread that spawns it).
    async fn nft_apply(
        &self,
        rules: nftables::schema::Nftables<'static>,
        op: &'static str,
    ) -> Result<()> {
        let run = move || nftables::helper::apply_ruleset(&rules);
        let r = match &self.host_ns {
            Some(ns) => ns.run_async(run).await?,
            None => tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| DriverError::Io {
                    op: op.into(),
                    source: std::io::Error::other(e),
                })?,
        };
        r.map_err(|source| DriverError::Nftables {
            op: op.into(),
            source,
        })
    }

    async fn read_ports(&self) -> Vec<(String, PortMapping)> {
        let family = if self.cfg.subnet.is_ipv6() {
            "ip6"
        } else {
            "ip"
        };
        let table = self.cfg.table.clone();
        let run = move || {
            let args = ["list", "table", family, table.as_str()];
            nftables::helper::get_current_ruleset_with_args(
                nftables::helper::DEFAULT_NFT,
                args.iter().copied(),
            )
        };
        let r = match &self.host_ns {
            Some(ns) => ns.run_async(run).await.ok(),
            None => tokio::task::spawn_blocking(run).await.ok(),
        };
        let Some(Ok(rules)) = r else {
            return Vec::new();
        };
        rules
            .objects
            .iter()
            .filter_map(|o| match o {
                nftables::schema::NfObject::ListObject(nftables::schema::NfListObject::Rule(r))
                    if r.chain == "prerouting" =>
                {
                    r.comment.as_deref().and_then(nft::parse_port_comment)
                }
                _ => None,
            })
            .collect()
    }

    async fn recover(&self) -> Result<()> {
        let mut st = self.st.lock().await;
        let Some(br) = nl::link_by_name(&self.host, &self.cfg.bridge).await? else {
            return Ok(());
        };
        if nl::link_alias(&br) != Some(BRIDGE_ALIAS) {
            // Not ours: left alone; attach will report the name as taken.
            return Ok(());
        }
        let bridge = br.header.index;
        st.bridge = Some(bridge);
        let ports = self.read_ports().await;
        for l in nl::all_links(&self.host).await? {
            if nl::link_controller(&l) != Some(bridge) || nl::link_kind(&l) != Some(&InfoKind::Veth)
            {
                continue;
            }
            let name = nl::link_name(&l).unwrap_or_default().to_string();
            let parsed = nl::link_alias(&l).and_then(alias::parse_endpoint);
            let restored = match parsed {
                Some((id, ifname, addrs)) if addrs.len() == 1 => {
                    let address = addrs[0];
                    match st.ipam.restore_address(
                        GW_NET,
                        Owner::Endpoint(id.clone()),
                        address.addr(),
                    ) {
                        Ok(()) => Some((id, ifname, address)),
                        Err(_) => None,
                    }
                }
                _ => None,
            };
            match restored {
                Some((id, ifname, address)) => {
                    let ep = GatewayEndpoint {
                        endpoint_id: id.clone(),
                        ifname,
                        address,
                        mac: MacAddr::from_ip(address.addr()),
                        gateway: self.cfg.gateway(),
                        ports: ports
                            .iter()
                            .filter(|(e, _)| *e == id)
                            .map(|(_, p)| *p)
                            .collect(),
                    };
                    st.endpoints.insert(id, (ep, name));
                }
                None => {
                    tracing::warn!("removing stray veth {name} on {}", self.cfg.bridge);
                    nl::delete_link(&self.host, l.header.index, &name).await?;
                }
            }
        }
        if st.endpoints.is_empty() {
            self.remove_bridge(&mut st).await
        } else {
            self.apply_rules(&st).await
        }
    }
}
