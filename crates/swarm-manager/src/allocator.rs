//! The allocator (leader only): subnets and VNIs for networks, addresses
//! for tasks and nodes, VIPs and published ports for services. State lives
//! in the objects themselves, so a new leader rebuilds it from the store
//! and never hands out an address twice.
//!
//! It also moves new tasks from NEW to PENDING once their network
//! attachments have addresses.

use std::collections::HashSet;
use std::sync::Arc;

use swarm_api::v1::*;
use swarm_lb::Protocol as LbProtocol;
use swarm_lb::ingress::PortAllocator;
use swarm_overlay::allocator::NetworkAllocator;
use swarm_overlay::ipam::IpamConfig;
use swarm_store::{AnyObject, By, Event, Kind, ReadTx, Store, StoreError, WatchError, WatchFilter};

struct State {
    networks: NetworkAllocator,
    ports: PortAllocator,
    /// Ingress ports taken, per service, to release them with it.
    service_ports: std::collections::HashMap<String, Vec<(LbProtocol, u16)>>,
}

fn ingress_network(view: &ReadTx) -> Option<Arc<Network>> {
    view.all::<Network>()
        .into_iter()
        .find(|n| n.spec.as_ref().is_some_and(|s| s.ingress))
}

fn publishes_ingress(spec: &ServiceSpec) -> bool {
    spec.endpoint
        .iter()
        .flat_map(|e| &e.ports)
        .any(|p| p.publish_mode() == PublishMode::Ingress)
}

fn vip_mode(spec: &ServiceSpec) -> bool {
    spec.endpoint
        .as_ref()
        .is_none_or(|e| e.mode() == ResolutionMode::Vip)
}

impl State {
    fn rebuild(view: &ReadTx) -> State {
        let config = view
            .all::<Cluster>()
            .first()
            .and_then(|c| IpamConfig::from_cluster(c).ok())
            .unwrap_or_default();
        let (networks, conflicts) = NetworkAllocator::rebuild(
            config,
            &view
                .all::<Network>()
                .iter()
                .map(|n| (**n).clone())
                .collect::<Vec<_>>(),
            &view
                .all::<Service>()
                .iter()
                .map(|s| (**s).clone())
                .collect::<Vec<_>>(),
            &view
                .all::<Task>()
                .iter()
                .filter(|t| !t.state().is_terminal())
                .map(|t| (**t).clone())
                .collect::<Vec<_>>(),
            &view
                .all::<Node>()
                .iter()
                .map(|n| (**n).clone())
                .collect::<Vec<_>>(),
        );
        for c in conflicts {
            tracing::warn!(object = %c.object, error = %c.error, "allocation conflict found while rebuilding; it will be redone");
        }
        let mut state = State {
            networks,
            ports: PortAllocator::default(),
            service_ports: Default::default(),
        };
        for s in view.all::<Service>() {
            let mut taken = Vec::new();
            for p in s.endpoint.iter().flat_map(|e| &e.ports) {
                if p.publish_mode() == PublishMode::Ingress && p.published_port != 0 {
                    let proto = LbProtocol::from_api(p.protocol());
                    let port = u16::try_from(p.published_port).unwrap_or(0);
                    if state.ports.reserve(proto, port).is_ok() {
                        taken.push((proto, port));
                    }
                }
            }
            state.service_ports.insert(s.id.clone(), taken);
        }
        state
    }

    /// Allocates what a network lacks; the updated network if it changed.
    fn network(&mut self, n: &Network) -> Option<Network> {
        if self.networks.is_allocated(&n.id) {
            return None;
        }
        let mut n = n.clone();
        match self.networks.allocate_network(&mut n) {
            Ok(()) => Some(n),
            Err(e) => {
                tracing::warn!(network = %n.id, error = %e, "cannot allocate network");
                None
            }
        }
    }

    /// The endpoint (ports with published ports filled, VIPs) a service
    /// should have; the updated service if anything changed.
    fn service(&mut self, view: &ReadTx, s: &Service) -> Option<Service> {
        let spec = s.spec.as_ref()?;
        let mut out = s.clone();
        let endpoint = out.endpoint.get_or_insert_with(Default::default);
        endpoint.spec = spec.endpoint.clone();
        // Published ports: keep those already allocated for the same
        // target/protocol, take the ones asked for, pick the rest.
        let previous = std::mem::take(&mut endpoint.ports);
        let mut taken = Vec::new();
        for p in spec.endpoint.iter().flat_map(|e| &e.ports) {
            let mut port = p.clone();
            if p.publish_mode() == PublishMode::Ingress {
                let proto = LbProtocol::from_api(p.protocol());
                let kept = previous
                    .iter()
                    .find(|q| {
                        q.target_port == p.target_port
                            && q.protocol == p.protocol
                            && (p.published_port == 0 || q.published_port == p.published_port)
                    })
                    .map(|q| q.published_port);
                let chosen = match (p.published_port, kept) {
                    (_, Some(k)) => Some(k),
                    (0, None) => self.ports.allocate(proto).ok().map(u32::from),
                    (want, None) => {
                        let w = u16::try_from(want).unwrap_or(0);
                        self.ports.reserve(proto, w).ok().map(|()| want)
                    }
                };
                match chosen {
                    Some(c) => {
                        port.published_port = c;
                        taken.push((proto, u16::try_from(c).unwrap_or(0)));
                    }
                    None => {
                        tracing::warn!(service = %s.id, port = p.published_port, "published port unavailable");
                    }
                }
            }
            endpoint.ports.push(port);
        }
        // Release ports no longer published.
        let old = self
            .service_ports
            .insert(s.id.clone(), taken.clone())
            .unwrap_or_default();
        for (proto, port) in old {
            if !taken.contains(&(proto, port)) {
                self.ports.release(proto, port);
            }
        }
        // VIPs on every attached network (and ingress when publishing).
        let mut nets: Vec<String> = Vec::new();
        if vip_mode(spec) {
            nets.extend(
                spec.task
                    .iter()
                    .flat_map(|t| &t.networks)
                    .map(|n| n.target.clone()),
            );
            if publishes_ingress(spec)
                && let Some(ing) = ingress_network(view)
            {
                nets.push(ing.id.clone());
            }
        }
        nets.retain(|n| self.networks.is_allocated(n));
        if let Err(e) = self.networks.allocate_service(&mut out, &nets) {
            tracing::warn!(service = %s.id, error = %e, "cannot allocate service VIPs");
        }
        (out != *s).then_some(out)
    }

    fn release_service(&mut self, s: &Service) {
        self.networks.release_service(s);
        for (proto, port) in self.service_ports.remove(&s.id).unwrap_or_default() {
            self.ports.release(proto, port);
        }
    }

    /// Attachments and addresses for a NEW task, then PENDING. `None` when
    /// it must wait (a network not allocated yet).
    fn task(&mut self, view: &ReadTx, t: &Task) -> Option<Task> {
        if t.state() != TaskState::New {
            return None;
        }
        let mut out = t.clone();
        let service = view.get::<Service>(&t.service_id);
        let mut attachments = Vec::new();
        for cfg in t.spec.iter().flat_map(|s| &s.networks) {
            let net = view.get::<Network>(&cfg.target)?;
            if !self.networks.is_allocated(&net.id) {
                return None;
            }
            attachments.push(NetworkAttachment {
                network: Some((*net).clone()),
                aliases: cfg.aliases.clone(),
                ..Default::default()
            });
        }
        if service
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .is_some_and(publishes_ingress)
            && let Some(ing) = ingress_network(view)
        {
            if !self.networks.is_allocated(&ing.id) {
                return None;
            }
            attachments.push(NetworkAttachment {
                network: Some((*ing).clone()),
                ..Default::default()
            });
        }
        if out.networks.is_empty() {
            out.networks = attachments;
        }
        if let Err(e) = self.networks.allocate_task(&mut out) {
            tracing::warn!(task = %t.id, error = %e, "cannot allocate task addresses");
            return None;
        }
        if let Some(s) = service {
            out.endpoint.clone_from(&s.endpoint);
        }
        out.status = Some(TaskStatus {
            timestamp: Some(Timestamp::now()),
            state: TaskState::Pending.into(),
            message: "pending task scheduling".into(),
            ..Default::default()
        });
        Some(out)
    }

    /// The node's ingress address, when it has none yet.
    fn node(&mut self, view: &ReadTx, n: &Node) -> Option<Node> {
        let ing = ingress_network(view)?;
        if !self.networks.is_allocated(&ing.id)
            || n.attachments
                .iter()
                .any(|a| a.network.as_ref().is_some_and(|x| x.id == ing.id))
        {
            return None;
        }
        let addresses = self.networks.allocate_endpoint(&ing.id, &n.id, &[]).ok()?;
        let mut out = n.clone();
        out.attachments.push(NetworkAttachment {
            network: Some((*ing).clone()),
            addresses,
            ..Default::default()
        });
        Some(out)
    }
}

/// Runs the allocator until the store closes or the task is aborted.
pub async fn run(store: Store) {
    let filter = WatchFilter::all()
        .kinds([
            Kind::Network,
            Kind::Service,
            Kind::Task,
            Kind::Node,
            Kind::Cluster,
        ])
        .capacity(200_000);
    let (mut state, mut watcher) = store.view_and_watch(filter.clone(), State::rebuild);
    // Catch up with everything that waits.
    let mut pending = Pending::everything(&store.view());
    loop {
        flush(&store, &mut state, &mut pending).await;
        match watcher.recv().await {
            Ok(e) => pending.note(&mut state, e),
            Err(WatchError::Lagged) => {
                let (s, w) = store.view_and_watch(filter.clone(), State::rebuild);
                state = s;
                watcher = w;
                pending = Pending::everything(&store.view());
            }
            Err(_) => return,
        }
        // Take whatever else is already queued before writing.
        while let Ok(Some(e)) = watcher.try_recv() {
            pending.note(&mut state, e);
        }
    }
}

/// Objects to look at again.
#[derive(Default)]
struct Pending {
    networks: HashSet<String>,
    services: HashSet<String>,
    tasks: HashSet<String>,
    nodes: HashSet<String>,
}

impl Pending {
    fn everything(view: &ReadTx) -> Pending {
        Pending {
            networks: view.all::<Network>().iter().map(|n| n.id.clone()).collect(),
            services: view.all::<Service>().iter().map(|s| s.id.clone()).collect(),
            tasks: view
                .find::<Task>(By::TaskState(TaskState::New))
                .unwrap_or_default()
                .iter()
                .map(|t| t.id.clone())
                .collect(),
            nodes: view.all::<Node>().iter().map(|n| n.id.clone()).collect(),
        }
    }

    fn note(&mut self, state: &mut State, e: Event) {
        match e {
            Event::Created(o) | Event::Updated { new: o, .. } => match o {
                AnyObject::Network(n) => {
                    self.networks.insert(n.id.clone());
                    // Tasks and services may have waited for it.
                    self.services.insert(String::new());
                    self.tasks.insert(String::new());
                }
                AnyObject::Service(s) => {
                    self.services.insert(s.id.clone());
                }
                AnyObject::Task(t) => {
                    if t.state() == TaskState::New {
                        self.tasks.insert(t.id.clone());
                    } else if t.state().is_terminal() {
                        state.networks.release_task(&t);
                    }
                }
                AnyObject::Node(n) => {
                    self.nodes.insert(n.id.clone());
                }
                _ => {}
            },
            Event::Deleted(o) => match o {
                AnyObject::Network(n) => {
                    state.networks.release_network(&n.id);
                }
                AnyObject::Service(s) => state.release_service(&s),
                AnyObject::Task(t) => state.networks.release_task(&t),
                AnyObject::Node(n) => {
                    state.networks.release_attachments(&n.id, &n.attachments);
                }
                _ => {}
            },
            Event::Commit { .. } => {}
        }
    }
}

async fn flush(store: &Store, state: &mut State, pending: &mut Pending) {
    let view = store.view();
    // A marker ("") asks to recheck everything of the kind that waits.
    if pending.tasks.remove("") {
        for t in view
            .find::<Task>(By::TaskState(TaskState::New))
            .unwrap_or_default()
        {
            pending.tasks.insert(t.id.clone());
        }
    }
    if pending.services.remove("") {
        pending
            .services
            .extend(view.all::<Service>().iter().map(|s| s.id.clone()));
    }
    let mut networks: Vec<Network> = Vec::new();
    for id in pending.networks.drain() {
        if let Some(n) = view.get::<Network>(&id).and_then(|n| state.network(&n)) {
            networks.push(n);
        }
    }
    write_all(store, networks).await;
    let view = store.view();
    let services: Vec<Service> = pending
        .services
        .drain()
        .filter_map(|id| view.get::<Service>(&id))
        .filter_map(|s| state.service(&view, &s))
        .collect();
    write_all(store, services).await;
    let view = store.view();
    let nodes: Vec<Node> = pending
        .nodes
        .drain()
        .filter_map(|id| view.get::<Node>(&id))
        .filter_map(|n| state.node(&view, &n))
        .collect();
    write_all(store, nodes).await;
    // Tasks that wait for a network are looked at again when networks
    // change (see `Pending::note`).
    let view = store.view();
    let tasks: Vec<Task> = pending
        .tasks
        .drain()
        .filter_map(|id| view.get::<Task>(&id))
        .filter_map(|t| state.task(&view, &t))
        .collect();
    write_all(store, tasks).await;
}

/// Writes allocated objects in bounded transactions; a conflict (the
/// object changed meanwhile) is picked up again from its next event.
async fn write_all<T: swarm_store::Object>(store: &Store, objects: Vec<T>) {
    if objects.is_empty() {
        return;
    }
    let result = store
        .batch(|b| {
            for o in &objects {
                if let Err(e) = b.update(|tx| tx.update(o.clone()).map(drop)) {
                    tracing::debug!(error = %e, "allocation write skipped");
                }
            }
            Ok::<_, StoreError>(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "writing allocations failed");
    }
}
