//! Pure translation of a [`NetworkView`] into what a node programs: the
//! overlay peers, the DNS records and the VIP load-balancer states, and the
//! difference between two views' records. No I/O.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use swarm_api::v1::{self, NetworkView};
use swarm_lb::dns::{NetworkRecord, ResolutionMode, ServiceRecord, TaskRecord};
use swarm_lb::{Backend, ServiceSpec, ServiceState};
use swarm_overlay::driver::Peer;

use super::NetworkError;

/// What one network view asks of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewPlan {
    /// The network's DNS record.
    pub network: Option<NetworkRecord>,
    /// Services reachable on the network, by service id.
    pub services: BTreeMap<String, ServiceRecord>,
    /// Tasks that receive traffic (serving), by task id.
    pub tasks: BTreeMap<String, TaskRecord>,
    /// Every endpoint of the network as an overlay peer (this node's own
    /// are filtered out later, by the peer table).
    pub peers: Vec<Peer>,
    /// The VIP services with their serving tasks as backends.
    pub vips: Vec<ServiceState>,
}

/// The first address of a CIDR string (`10.0.0.2/24` -> `10.0.0.2`).
fn cidr_ip(s: &str) -> Option<IpAddr> {
    s.split('/').next()?.parse().ok()
}

/// A node address as the manager reports it: an IP, or `ip:port`.
fn node_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

impl ViewPlan {
    /// The plan of a view. Endpoints with unreadable addresses are left out
    /// (and logged) rather than failing the whole network.
    pub fn from_view(view: &NetworkView) -> Result<ViewPlan, NetworkError> {
        let net = view
            .network
            .as_ref()
            .filter(|n| !n.id.is_empty())
            .ok_or_else(|| NetworkError::Invalid("a network view names no network".into()))?;
        let mut plan = ViewPlan {
            network: Some(swarm_lb::dns::network_record(net)),
            ..ViewPlan::default()
        };
        for s in &view.services {
            let mode = v1::ResolutionMode::try_from(s.mode).unwrap_or_default();
            let vip = if s.vip.is_empty() {
                None
            } else {
                match cidr_ip(&s.vip) {
                    Some(ip) => Some(ip),
                    None => {
                        tracing::warn!(service = %s.service_id, vip = %s.vip, "unreadable VIP: ignored");
                        None
                    }
                }
            };
            plan.services.insert(
                s.service_id.clone(),
                ServiceRecord {
                    id: s.service_id.clone(),
                    name: s.name.clone(),
                    aliases: s.aliases.clone(),
                    mode: ResolutionMode::from_api(mode),
                    vip,
                },
            );
        }
        for t in &view.tasks {
            let ips: Vec<String> = t.addresses.clone();
            if let Some(vtep) = node_ip(&t.node_addr) {
                match Peer::from_addresses(&ips, vtep) {
                    Ok(p) => plan.peers.extend(p),
                    Err(e) => tracing::warn!(task = %t.task_id, error = %e, "unreadable endpoint"),
                }
            } else if !t.node_addr.is_empty() {
                tracing::warn!(task = %t.task_id, addr = %t.node_addr, "unreadable node address");
            }
            let Some(addr) = t.addresses.first().and_then(|a| cidr_ip(a)) else {
                continue;
            };
            if t.serving {
                plan.tasks.insert(
                    t.task_id.clone(),
                    TaskRecord {
                        id: t.task_id.clone(),
                        name: t.name.clone(),
                        service_id: t.service_id.clone(),
                        addr,
                        aliases: t.aliases.clone(),
                    },
                );
            }
        }
        for s in plan.services.values() {
            let Some(vip) = s.vip.filter(|_| s.mode == ResolutionMode::Vip) else {
                continue;
            };
            let backends = plan
                .tasks
                .values()
                .filter(|t| t.service_id == s.id && t.addr.is_ipv4() == vip.is_ipv4())
                .map(|t| Backend::new(t.addr));
            plan.vips.push(
                ServiceState::new(ServiceSpec::vip(s.id.clone(), vip)).with_backends(backends),
            );
        }
        Ok(plan)
    }

    /// The network id.
    pub fn network_id(&self) -> &str {
        self.network.as_ref().map_or("", |n| n.id.as_str())
    }
}

/// Changes to the DNS records of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordChanges {
    /// Services gone (their tasks go with them).
    pub remove_services: Vec<String>,
    /// Tasks gone, or no longer serving.
    pub remove_tasks: Vec<String>,
    /// Services new or changed.
    pub set_services: Vec<ServiceRecord>,
    /// Tasks new or changed (set after the services).
    pub set_tasks: Vec<TaskRecord>,
}

impl RecordChanges {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.remove_services.is_empty()
            && self.remove_tasks.is_empty()
            && self.set_services.is_empty()
            && self.set_tasks.is_empty()
    }
}

/// The record changes from `old` to `new` (same network). A task whose
/// service is removed is removed with it and, when still wanted, set again.
pub fn record_changes(old: &ViewPlan, new: &ViewPlan) -> RecordChanges {
    let mut c = RecordChanges::default();
    for id in old.services.keys() {
        if !new.services.contains_key(id) {
            c.remove_services.push(id.clone());
        }
    }
    for (id, t) in &old.tasks {
        if !new.tasks.contains_key(id) && !c.remove_services.contains(&t.service_id) {
            c.remove_tasks.push(id.clone());
        }
    }
    for (id, s) in &new.services {
        if old.services.get(id) != Some(s) {
            c.set_services.push(s.clone());
        }
    }
    for (id, t) in &new.tasks {
        let dropped_with_service = old
            .tasks
            .get(id)
            .is_some_and(|o| c.remove_services.contains(&o.service_id));
        if old.tasks.get(id) != Some(t) || dropped_with_service {
            c.set_tasks.push(t.clone());
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_api::v1::{Network, ServiceEndpoint, TaskEndpoint};

    fn svc(id: &str, name: &str, vip: &str) -> ServiceEndpoint {
        ServiceEndpoint {
            service_id: id.into(),
            name: name.into(),
            vip: vip.into(),
            ..Default::default()
        }
    }

    fn ep(id: &str, svc: &str, addr: &str, node: &str, serving: bool) -> TaskEndpoint {
        TaskEndpoint {
            task_id: id.into(),
            service_id: svc.into(),
            name: format!("{svc}.1.{id}"),
            addresses: vec![addr.into()],
            node_id: "n".into(),
            node_addr: node.into(),
            serving,
            ..Default::default()
        }
    }

    fn view(services: Vec<ServiceEndpoint>, tasks: Vec<TaskEndpoint>) -> NetworkView {
        NetworkView {
            network: Some(Network {
                id: "net1".into(),
                ..Default::default()
            }),
            services,
            tasks,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_view_gives_peers_records_and_vips() {
        let v = view(
            vec![svc("s1", "web", "10.0.0.2/24"), svc("s2", "rr", "")],
            vec![
                ep("t1", "s1", "10.0.0.3/24", "192.0.2.1", true),
                ep("t2", "s1", "10.0.0.4/24", "192.0.2.2", false),
                ep("t3", "s2", "10.0.0.5/24", "192.0.2.2:4789", true),
                ep("t4", "s1", "10.0.0.6/24", "", true),
            ],
        );
        let p = ViewPlan::from_view(&v).unwrap();
        assert_eq!(p.network_id(), "net1");
        // Every endpoint with a node address is a peer, serving or not.
        let peers: Vec<(IpAddr, IpAddr)> = p.peers.iter().map(|p| (p.ip, p.vtep)).collect();
        assert_eq!(
            peers,
            vec![
                (ip("10.0.0.3"), ip("192.0.2.1")),
                (ip("10.0.0.4"), ip("192.0.2.2")),
                (ip("10.0.0.5"), ip("192.0.2.2")),
            ]
        );
        // Only serving tasks resolve and take traffic.
        assert_eq!(
            p.tasks.keys().cloned().collect::<Vec<_>>(),
            ["t1", "t3", "t4"]
        );
        assert_eq!(p.services["s1"].vip, Some(ip("10.0.0.2")));
        assert_eq!(p.services["s2"].vip, None);
        assert_eq!(p.vips.len(), 1, "no VIP, no load balancing");
        let backends: Vec<IpAddr> = p.vips[0].backends.keys().copied().collect();
        assert_eq!(backends, vec![ip("10.0.0.3"), ip("10.0.0.6")]);
    }

    #[test]
    fn a_view_without_network_is_refused() {
        assert!(ViewPlan::from_view(&NetworkView::default()).is_err());
    }

    #[test]
    fn record_changes_table() {
        let a = ViewPlan::from_view(&view(
            vec![
                svc("s1", "web", "10.0.0.2/24"),
                svc("s2", "db", "10.0.0.9/24"),
            ],
            vec![
                ep("t1", "s1", "10.0.0.3/24", "192.0.2.1", true),
                ep("t2", "s2", "10.0.0.4/24", "192.0.2.1", true),
            ],
        ))
        .unwrap();
        assert!(
            record_changes(&a, &a).is_empty(),
            "same view, nothing to do"
        );

        let first = record_changes(&ViewPlan::default(), &a);
        assert_eq!(first.set_services.len(), 2);
        assert_eq!(first.set_tasks.len(), 2);

        // s2 goes (t2 with it), t1 stops serving, t5 starts, web gets an alias.
        let mut web = svc("s1", "web", "10.0.0.2/24");
        web.aliases = vec!["www".into()];
        let b = ViewPlan::from_view(&view(
            vec![web],
            vec![
                ep("t1", "s1", "10.0.0.3/24", "192.0.2.1", false),
                ep("t5", "s1", "10.0.0.5/24", "192.0.2.2", true),
            ],
        ))
        .unwrap();
        let c = record_changes(&a, &b);
        assert_eq!(c.remove_services, ["s2"]);
        assert_eq!(c.remove_tasks, ["t1"], "t2 goes with its service");
        assert_eq!(c.set_services.len(), 1);
        assert_eq!(c.set_services[0].aliases, ["www"]);
        assert_eq!(
            c.set_tasks
                .iter()
                .map(|t| t.id.as_str())
                .collect::<Vec<_>>(),
            ["t5"]
        );
    }
}
