//! Network attachment: tasks on overlay networks get a network namespace
//! of their own, joined to each of their networks, with the embedded DNS
//! at 127.0.0.11:53 and the services' VIPs balanced inside it.
//!
//! One [`NetworkAttacher`] per node owns:
//! - a [`NetworkDriver`] (the VXLAN driver when the agent runs as root
//!   with a data-path address, else the no-op driver, which only keeps
//!   the books: tasks then share the host's network);
//! - the node's DNS [`RecordDb`], fed from the manager's
//!   [`NetworkView`]s (see [`plan`]);
//! - the overlay [`PeerTable`], fed from the same views;
//! - per task sandbox: its namespace (`<netns dir>/<prefix>-<task id>`),
//!   a [`SandboxResolver`] and an nftables VIP load balancer.
//!
//! The agent hands it the assignments ([`NetworkAttacher::apply`]; views
//! are applied in order by a background task) and the process executor
//! calls [`NetworkAttacher::attach`] when it prepares a task with network
//! attachments and [`NetworkAttacher::detach`] when it removes it. The
//! Docker executor, whose engine makes each container's namespace, calls
//! [`NetworkAttacher::attach_into`] with the namespace of the task's
//! sandbox container instead.
//!
//! A network is created on this node when its first task here is
//! attached, and deleted when its last one leaves. Peers are programmed
//! only for networks that exist on the node.
//!
//! Every executor gives tasks on networks an `/etc/resolv.conf` naming
//! the embedded DNS only ([`RESOLV_CONF`]), so programs resolve service
//! names as in Docker. No gateway bridge is set up: tasks reach their overlay networks only.

pub mod plan;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use swarm_api::v1::{
    AssignmentAction, AssignmentsMessage, AssignmentsType, NetworkView, Task, assignment,
};
use swarm_lb::dns::{RecordDb, ResolverConfig, SandboxResolver};
use swarm_lb::nft::{NftBalancer, NftConfig};
use swarm_lb::{LoadBalancer, NetNs, ServiceState};
use swarm_overlay::driver::{JoinRequest, NetnsRef, NetworkConfig, NetworkDriver};
use swarm_overlay::netns::{DEFAULT_NETNS_DIR, Netns, remove_named};
use swarm_overlay::noop::NoopDriver;
use swarm_overlay::peers::PeerTable;
use swarm_overlay::vxlan::{VxlanConfig, VxlanDriver};
use tokio::sync::mpsc;

use plan::{ViewPlan, record_changes};

/// The `/etc/resolv.conf` of tasks on networks: the embedded DNS only
/// (as in Docker's user-defined networks).
pub const RESOLV_CONF: &str = "nameserver 127.0.0.11\noptions ndots:0\n";

/// Default prefix of task namespace names (`swt-<task id>`).
pub const DEFAULT_TASK_PREFIX: &str = "swt";

/// Why attaching a task or applying a view failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// Bad input from the manager (unreadable view or attachment).
    #[error("{0}")]
    Invalid(String),
    /// The overlay driver failed.
    #[error("overlay: {0}")]
    Driver(#[from] swarm_overlay::error::DriverError),
    /// A namespace could not be made or removed.
    #[error(transparent)]
    Netns(#[from] swarm_overlay::netns::NetnsError),
    /// The DNS resolver or the load balancer failed.
    #[error("load balancer/DNS: {0}")]
    Lb(#[from] swarm_lb::LbError),
}

/// A view change, in assignment order.
#[derive(Debug)]
enum ViewUpdate {
    /// The full set: views not in it are gone.
    Complete(Vec<NetworkView>),
    /// Changes: a view, and whether it was removed.
    Changes(Vec<(NetworkView, bool)>),
}

/// One task's sandbox.
struct Sandbox {
    netns: PathBuf,
    /// Networks the task is joined to (interface order).
    networks: Vec<String>,
    /// Networks actually joined (left again on detach).
    joined: Vec<String>,
    resolver: Option<SandboxResolver>,
    lb: Option<NftBalancer>,
}

#[derive(Default)]
struct State {
    views: HashMap<String, ViewPlan>,
    peers: Option<PeerTable>,
    /// Networks created on this node.
    created: BTreeSet<String>,
    sandboxes: HashMap<String, Sandbox>,
}

/// Builds a [`NetworkAttacher`].
#[derive(Clone)]
pub struct NetworkAttacherBuilder {
    driver: Arc<dyn NetworkDriver>,
    data_path_addr: Option<IpAddr>,
    sandboxes: bool,
    netns_dir: PathBuf,
    prefix: String,
    upstreams: Option<Vec<SocketAddr>>,
}

impl std::fmt::Debug for NetworkAttacherBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkAttacherBuilder")
            .field("driver", &self.driver.name())
            .field("data_path_addr", &self.data_path_addr)
            .field("sandboxes", &self.sandboxes)
            .field("netns_dir", &self.netns_dir)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl NetworkAttacherBuilder {
    /// This node's data-path address (the VTEP): its own endpoints are not
    /// programmed as peers.
    pub fn data_path_addr(mut self, addr: IpAddr) -> Self {
        self.data_path_addr = Some(addr);
        self
    }

    /// Give attached tasks namespaces of their own (default: true for a
    /// driver other than the no-op one). Needs root.
    pub fn sandboxes(mut self, on: bool) -> Self {
        self.sandboxes = on;
        self
    }

    /// Directory naming task namespaces (default `/run/netns`).
    pub fn netns_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.netns_dir = dir.into();
        self
    }

    /// Prefix of task namespace names (default [`DEFAULT_TASK_PREFIX`]).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Where the embedded DNS forwards unknown names (default: the
    /// servers of the host's `/etc/resolv.conf`).
    pub fn upstreams(mut self, servers: Vec<SocketAddr>) -> Self {
        self.upstreams = Some(servers);
        self
    }

    /// Checks the settings and makes the attacher.
    pub fn build(self) -> Result<NetworkAttacher, NetworkError> {
        let ok = !self.prefix.is_empty()
            && self.prefix.len() <= 32
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(NetworkError::Invalid(format!(
                "namespace prefix {:?} must be 1 to 32 of [A-Za-z0-9_-]",
                self.prefix
            )));
        }
        if !self.netns_dir.is_absolute() {
            return Err(NetworkError::Invalid(format!(
                "namespace directory {} must be absolute",
                self.netns_dir.display()
            )));
        }
        let upstreams = self.upstreams.unwrap_or_else(|| {
            std::fs::read_to_string("/etc/resolv.conf")
                .map(|t| swarm_lb::dns::parse_resolv_conf(&t))
                .unwrap_or_default()
        });
        let vtep = self
            .data_path_addr
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(NetworkAttacher {
            driver: self.driver,
            sandboxes: self.sandboxes,
            netns_dir: self.netns_dir,
            prefix: self.prefix,
            upstreams,
            db: Arc::new(RecordDb::new()),
            state: tokio::sync::Mutex::new(State {
                peers: Some(PeerTable::new(vtep)),
                ..State::default()
            }),
            updates: tx,
            updates_rx: parking_lot::Mutex::new(Some(rx)),
        })
    }
}

/// Attaches tasks to overlay networks. See the [module docs](self).
pub struct NetworkAttacher {
    driver: Arc<dyn NetworkDriver>,
    sandboxes: bool,
    netns_dir: PathBuf,
    prefix: String,
    upstreams: Vec<SocketAddr>,
    db: Arc<RecordDb>,
    state: tokio::sync::Mutex<State>,
    updates: mpsc::UnboundedSender<ViewUpdate>,
    updates_rx: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<ViewUpdate>>>,
}

impl std::fmt::Debug for NetworkAttacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkAttacher")
            .field("driver", &self.driver.name())
            .field("sandboxes", &self.sandboxes)
            .finish_non_exhaustive()
    }
}

impl NetworkAttacher {
    /// A builder over `driver`.
    pub fn builder(driver: Arc<dyn NetworkDriver>) -> NetworkAttacherBuilder {
        let sandboxes = driver.name() != NoopDriver::new().name();
        NetworkAttacherBuilder {
            driver,
            data_path_addr: None,
            sandboxes,
            netns_dir: PathBuf::from(DEFAULT_NETNS_DIR),
            prefix: DEFAULT_TASK_PREFIX.to_string(),
            upstreams: None,
        }
    }

    /// The attacher a node gets by default: the VXLAN driver with task
    /// sandboxes when running as root with a data-path address, else the
    /// no-op driver (tasks share the host's network).
    pub async fn for_node(data_path_addr: Option<IpAddr>) -> Result<NetworkAttacher, NetworkError> {
        match data_path_addr {
            Some(addr) if nix::unistd::geteuid().is_root() => {
                let driver = VxlanDriver::new(VxlanConfig::builder(addr).build()?).await?;
                NetworkAttacher::builder(Arc::new(driver))
                    .data_path_addr(addr)
                    .build()
            }
            _ => NetworkAttacher::builder(Arc::new(NoopDriver::new())).build(),
        }
    }

    /// The network driver's name (`overlay`, `null`), as the node reports
    /// it among its plugins.
    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    /// True when attached tasks get namespaces of their own.
    pub fn has_sandboxes(&self) -> bool {
        self.sandboxes
    }

    /// The node's DNS records.
    pub fn records(&self) -> &Arc<RecordDb> {
        &self.db
    }

    /// The namespace path of a task's sandbox, if it has one.
    pub async fn sandbox_netns(&self, task_id: &str) -> Option<PathBuf> {
        self.state
            .lock()
            .await
            .sandboxes
            .get(task_id)
            .map(|s| s.netns.clone())
    }

    /// Takes the network views of an assignments message. They are applied
    /// in order by a background task (started on the first call; needs a
    /// tokio runtime).
    pub fn apply(self: &Arc<Self>, msg: &AssignmentsMessage) {
        let mut views = Vec::new();
        for c in &msg.changes {
            if let Some(assignment::Item::Network(v)) =
                c.assignment.as_ref().and_then(|a| a.item.as_ref())
            {
                views.push((v.clone(), c.action() == AssignmentAction::Remove));
            }
        }
        let update = if msg.r#type() == AssignmentsType::Complete {
            ViewUpdate::Complete(
                views
                    .into_iter()
                    .filter(|(_, removed)| !removed)
                    .map(|(v, _)| v)
                    .collect(),
            )
        } else if views.is_empty() {
            return;
        } else {
            ViewUpdate::Changes(views)
        };
        if let Some(mut rx) = self.updates_rx.lock().take() {
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(u) = rx.recv().await {
                    let Some(me) = me.upgrade() else { return };
                    me.handle(u).await;
                }
            });
        }
        let _ = self.updates.send(update);
    }

    async fn handle(&self, update: ViewUpdate) {
        let results = match update {
            ViewUpdate::Complete(views) => {
                let keep: BTreeSet<String> = views
                    .iter()
                    .filter_map(|v| v.network.as_ref().map(|n| n.id.clone()))
                    .collect();
                let gone: Vec<String> = {
                    let st = self.state.lock().await;
                    st.views
                        .keys()
                        .filter(|k| !keep.contains(*k))
                        .cloned()
                        .collect()
                };
                let mut r = Vec::new();
                for id in gone {
                    r.push(self.remove_view(&id).await);
                }
                for v in &views {
                    r.push(self.set_view(v).await);
                }
                r
            }
            ViewUpdate::Changes(changes) => {
                let mut r = Vec::new();
                for (v, removed) in &changes {
                    r.push(if *removed {
                        let id = v.network.as_ref().map(|n| n.id.as_str()).unwrap_or("");
                        self.remove_view(id).await
                    } else {
                        self.set_view(v).await
                    });
                }
                r
            }
        };
        for e in results.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %e, "applying a network view");
        }
    }

    /// Applies a network view now: DNS records, peers (when the network
    /// exists on this node) and the VIPs of the sandboxes on it.
    pub async fn set_view(&self, view: &NetworkView) -> Result<(), NetworkError> {
        let new = ViewPlan::from_view(view)?;
        let id = new.network_id().to_string();
        let mut st = self.state.lock().await;
        let old = st.views.remove(&id).unwrap_or_default();
        if let Some(rec) = new.network.clone() {
            self.db.set_network(rec);
        }
        let changes = record_changes(&old, &new);
        for s in &changes.remove_services {
            self.db.remove_service(&id, s);
        }
        for t in &changes.remove_tasks {
            self.db.remove_task(&id, t);
        }
        let mut first_err = None;
        for s in changes.set_services {
            if let Err(e) = self.db.set_service(&id, s) {
                first_err.get_or_insert(NetworkError::from(e));
            }
        }
        for t in changes.set_tasks {
            if let Err(e) = self.db.set_task(&id, t) {
                first_err.get_or_insert(NetworkError::from(e));
            }
        }
        let st = &mut *st;
        if st.created.contains(&id)
            && let Some(peers) = st.peers.as_mut()
            && let Err(e) = peers
                .sync(self.driver.as_ref(), &id, new.peers.iter().copied())
                .await
        {
            first_err.get_or_insert(e.into());
        }
        if old.vips != new.vips {
            for sb in st.sandboxes.values() {
                if sb.networks.contains(&id)
                    && let Some(lb) = &sb.lb
                    && let Err(e) = program_vips(lb, &old.vips, &new.vips)
                {
                    first_err.get_or_insert(e);
                }
            }
        }
        st.views.insert(id, new);
        first_err.map_or(Ok(()), Err)
    }

    /// Forgets a network view (the node has no task on it any more).
    pub async fn remove_view(&self, network_id: &str) -> Result<(), NetworkError> {
        let mut st = self.state.lock().await;
        let Some(old) = st.views.remove(network_id) else {
            return Ok(());
        };
        self.db.remove_network(network_id);
        let mut first_err = None;
        for sb in st.sandboxes.values() {
            if sb.networks.iter().any(|n| n == network_id)
                && let Some(lb) = &sb.lb
                && let Err(e) = program_vips(lb, &old.vips, &[])
            {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn netns_path(&self, task_id: &str) -> PathBuf {
        self.netns_dir.join(format!("{}-{task_id}", self.prefix))
    }

    /// Attaches a task to its networks: creates each network on this node
    /// if needed, and with sandboxes, a namespace for the task joined to
    /// every network (`eth0`, `eth1`... in attachment order), the DNS at
    /// 127.0.0.11:53 and the VIPs of the services on those networks.
    /// Returns the namespace's path (`None`: the task shares the host's
    /// network). Idempotent; on failure nothing of it is left.
    pub async fn attach(&self, task: &Task) -> Result<Option<PathBuf>, NetworkError> {
        self.attach_from(task, None).await
    }

    /// Like [`NetworkAttacher::attach`], into a namespace that already
    /// exists: `netns` is a namespace file such as `/proc/<pid>/ns/net` of
    /// a process in it (a container's, which the container engine made).
    /// The task's namespace name is bound to it (as `ip netns attach`
    /// does), so everything after, [`NetworkAttacher::detach`] included,
    /// works as for a namespace the attacher made; the namespace itself
    /// lives on while its processes do. Needs sandboxes
    /// ([`NetworkAttacher::has_sandboxes`]). Returns the name's path.
    /// Idempotent; on failure nothing of it is left but the namespace.
    pub async fn attach_into(&self, task: &Task, netns: &Path) -> Result<PathBuf, NetworkError> {
        if !self.sandboxes {
            return Err(NetworkError::Invalid(format!(
                "task {}: attaching into a namespace needs sandboxes (the {} driver has none)",
                task.id,
                self.driver.name()
            )));
        }
        if task.networks.is_empty() {
            return Err(NetworkError::Invalid(format!(
                "task {} has no network attachment",
                task.id
            )));
        }
        self.attach_from(task, Some(netns))
            .await?
            .ok_or_else(|| NetworkError::Invalid(format!("task {}: no sandbox made", task.id)))
    }

    async fn attach_from(
        &self,
        task: &Task,
        source: Option<&Path>,
    ) -> Result<Option<PathBuf>, NetworkError> {
        if task.networks.is_empty() {
            return Ok(None);
        }
        if task.id.is_empty() || !task.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(NetworkError::Invalid(format!(
                "task id {:?} is not alphanumeric",
                task.id
            )));
        }
        let mut st = self.state.lock().await;
        if let Some(sb) = st.sandboxes.get(&task.id) {
            return Ok(self.sandboxes.then(|| sb.netns.clone()));
        }
        let path = self.netns_path(&task.id);
        let mut sb = Sandbox {
            netns: path.clone(),
            networks: Vec::new(),
            joined: Vec::new(),
            resolver: None,
            lb: None,
        };
        let result = self.build_sandbox(&mut st, task, &mut sb, source).await;
        match result {
            Ok(()) => {
                st.sandboxes.insert(task.id.clone(), sb);
                Ok(self.sandboxes.then_some(path))
            }
            Err(e) => {
                self.teardown(&mut st, &task.id, sb).await;
                Err(e)
            }
        }
    }

    async fn build_sandbox(
        &self,
        st: &mut State,
        task: &Task,
        sb: &mut Sandbox,
        source: Option<&Path>,
    ) -> Result<(), NetworkError> {
        if self.sandboxes {
            // A leftover of an earlier attempt (or agent) goes first.
            remove_named(&sb.netns)?;
            let dir = sb
                .netns
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.netns_dir.clone());
            let name = format!("{}-{}", self.prefix, task.id);
            match source {
                None => Netns::create(dir, &name)?,
                Some(existing) => Netns::attach(dir, &name, existing)?,
            };
        }
        let nsref = if self.sandboxes {
            NetnsRef::Path(sb.netns.clone())
        } else {
            NetnsRef::Path(PathBuf::from("/proc/self/ns/net"))
        };
        for (i, att) in task.networks.iter().enumerate() {
            let net = att.network.as_ref().ok_or_else(|| {
                NetworkError::Invalid(format!("attachment of task {} names no network", task.id))
            })?;
            let cfg = NetworkConfig::from_network(net)?;
            self.driver.create_network(&cfg).await?;
            if st.created.insert(cfg.id.clone())
                && let Some(view) = st.views.get(&cfg.id)
                && let Some(peers) = st.peers.as_mut()
            {
                peers
                    .sync(self.driver.as_ref(), &cfg.id, view.peers.iter().copied())
                    .await?;
            }
            self.db.set_network(swarm_lb::dns::network_record(net));
            sb.networks.push(cfg.id.clone());
            let req =
                JoinRequest::from_attachment(&task.id, att, nsref.clone(), &format!("eth{i}"))?;
            self.driver.join(&req).await?;
            sb.joined.push(cfg.id.clone());
        }
        if !self.sandboxes {
            return Ok(());
        }
        let cfg = ResolverConfig::new(
            NetNs::Path(sb.netns.clone()),
            sb.networks.clone(),
            self.upstreams.clone(),
        );
        sb.resolver = Some(SandboxResolver::start(self.db.clone(), cfg).await?);
        let lb = NftBalancer::open(NftConfig::new(NetNs::Path(sb.netns.clone())))?;
        let desired: Vec<ServiceState> = sb
            .networks
            .iter()
            .filter_map(|n| st.views.get(n))
            .flat_map(|v| v.vips.iter().cloned())
            .collect();
        lb.reconcile(&desired)?;
        sb.lb = Some(lb);
        Ok(())
    }

    /// Undoes everything [`NetworkAttacher::attach`] made for a task:
    /// resolver, load balancer, endpoints, namespace, and the networks no
    /// other task of this node uses. Detaching an unknown task succeeds,
    /// and removes the task's namespace name if a previous agent left it.
    pub async fn detach(&self, task_id: &str) {
        let mut st = self.state.lock().await;
        if let Some(sb) = st.sandboxes.remove(task_id) {
            self.teardown(&mut st, task_id, sb).await;
        } else if self.sandboxes
            && !task_id.is_empty()
            && task_id.bytes().all(|b| b.is_ascii_alphanumeric())
            && let Err(e) = remove_named(self.netns_path(task_id))
        {
            tracing::warn!(task = task_id, error = %e, "removing a leftover task namespace");
        }
    }

    async fn teardown(&self, st: &mut State, task_id: &str, sb: Sandbox) {
        if let Some(r) = sb.resolver {
            r.shutdown().await;
        }
        drop(sb.lb);
        for net in &sb.joined {
            if let Err(e) = self.driver.leave(net, task_id).await {
                tracing::warn!(task = task_id, network = %net, error = %e, "leaving a network");
            }
        }
        if self.sandboxes
            && let Err(e) = remove_named(&sb.netns)
        {
            tracing::warn!(task = task_id, error = %e, "removing a task namespace");
        }
        for net in &sb.networks {
            let used = st.sandboxes.values().any(|o| o.networks.contains(net));
            if used || !st.created.contains(net) {
                continue;
            }
            match self.driver.delete_network(net).await {
                Ok(()) => {
                    st.created.remove(net);
                    if let Some(p) = st.peers.as_mut() {
                        p.forget(net);
                    }
                }
                Err(e) => tracing::warn!(network = %net, error = %e, "deleting a network"),
            }
        }
    }
}

/// Programs the VIP services of one network in a sandbox's balancer: those
/// gone are deleted, the others set whole.
fn program_vips(
    lb: &NftBalancer,
    old: &[ServiceState],
    new: &[ServiceState],
) -> Result<(), NetworkError> {
    for o in old {
        if !new.iter().any(|n| n.spec.id == o.spec.id) {
            lb.delete_service(&o.spec.id)?;
        }
    }
    for n in new {
        if !old.contains(n) {
            lb.set_service(n)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_api::v1::{
        Annotations, Network, NetworkAttachment, NetworkSpec, ServiceEndpoint, TaskEndpoint,
    };
    use swarm_lb::dns::Lookup;
    use swarm_overlay::allocator::NetworkAllocator;
    use swarm_overlay::ipam::IpamConfig;

    fn endpoint(id: &str, addr: &str, node: &str) -> TaskEndpoint {
        TaskEndpoint {
            task_id: id.into(),
            service_id: "s1".into(),
            name: format!("web.1.{id}"),
            addresses: vec![addr.into()],
            node_addr: node.into(),
            serving: true,
            ..Default::default()
        }
    }

    /// Without sandboxes (the no-op driver) the attacher still keeps the
    /// driver's books, the peers and the DNS records, and undoes them.
    #[tokio::test]
    async fn the_noop_attacher_keeps_books_records_and_peers() {
        let mut alloc = NetworkAllocator::new(IpamConfig::default());
        let mut net = Network {
            id: "net1".into(),
            spec: Some(NetworkSpec {
                annotations: Some(Annotations {
                    name: "front".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        alloc.allocate_network(&mut net).unwrap();
        let mut task = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            networks: vec![NetworkAttachment {
                network: Some(net.clone()),
                ..Default::default()
            }],
            ..Default::default()
        };
        alloc.allocate_task(&mut task).unwrap();
        let mine = task.networks[0].addresses[0].clone();

        let driver = Arc::new(NoopDriver::new());
        let att = NetworkAttacher::builder(driver.clone())
            .data_path_addr("192.0.2.1".parse().unwrap())
            .upstreams(Vec::new())
            .build()
            .unwrap();
        assert!(!att.has_sandboxes());
        assert_eq!(att.driver_name(), driver.name());

        let view = NetworkView {
            network: Some(net.clone()),
            services: vec![ServiceEndpoint {
                service_id: "s1".into(),
                name: "web".into(),
                vip: "10.0.0.9/24".into(),
                ..Default::default()
            }],
            tasks: vec![
                endpoint("t1", &mine, "192.0.2.1"),
                endpoint("t2", "10.0.0.7/24", "192.0.2.2"),
            ],
        };
        att.set_view(&view).await.unwrap();
        let nets = vec!["net1".to_string()];
        assert_eq!(
            att.records().lookup(&nets, "web"),
            Lookup::Found(vec!["10.0.0.9".parse().unwrap()])
        );
        assert!(
            driver.state().await.unwrap().networks.is_empty(),
            "no network before a task of this node needs it"
        );

        assert_eq!(att.attach(&task).await.unwrap(), None, "no sandbox");
        let state = driver.state().await.unwrap();
        assert_eq!(state.networks.len(), 1);
        assert_eq!(state.networks[0].endpoints.len(), 1);
        let peers: Vec<IpAddr> = state.networks[0].peers.iter().map(|p| p.ip).collect();
        assert_eq!(
            peers,
            vec!["10.0.0.7".parse::<IpAddr>().unwrap()],
            "only the remote endpoint is a peer"
        );
        assert_eq!(att.attach(&task).await.unwrap(), None, "idempotent");

        att.detach("t1").await;
        assert!(
            driver.state().await.unwrap().networks.is_empty(),
            "the last task gone, the network goes"
        );
        att.remove_view("net1").await.unwrap();
        assert_eq!(att.records().lookup(&nets, "web"), Lookup::NotFound);
    }
}
