//! Streaming assignments to agents: the full set when an agent attaches,
//! then per-transaction changes.
//!
//! One task (the fanout) watches the store and routes each change to the
//! one node it concerns, so the cost of a task change does not grow with
//! the number of connected nodes (SwarmKit filtered every change through
//! every session). A node receives the tasks assigned to it, only the
//! secrets and configs those tasks use, and the state of the networks they
//! attach to; network state goes to the nodes on that network, coalesced
//! over a short interval.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use swarm_api::v1::{
    Assignment, AssignmentAction, AssignmentChange, AssignmentsMessage, AssignmentsType, Config,
    Network, NetworkView, Secret, Service, Task, TaskState, assignment,
};
use swarm_store::{AnyObject, By, Event, ReadTx, Store, WatchError, WatchFilter};
use tokio::sync::mpsc;
use tonic::Status;

use super::network_view;

/// The assignments stream of one agent.
pub(crate) type AssignTx = mpsc::Sender<Result<AssignmentsMessage, Status>>;

/// Requests to the fanout.
pub(crate) enum FanoutCmd {
    /// An agent opened its assignments stream.
    Attach { node: String, tx: AssignTx },
}

/// What a sent task makes the node hold.
#[derive(Debug, Default, Clone, PartialEq)]
struct Refs {
    secrets: Vec<String>,
    configs: Vec<String>,
    networks: Vec<String>,
}

struct NodeState {
    tx: AssignTx,
    seq: u64,
    tasks: HashMap<String, Refs>,
    secrets: HashMap<String, usize>,
    configs: HashMap<String, usize>,
    networks: HashMap<String, usize>,
    pending: Vec<AssignmentChange>,
}

fn included(t: &Task, node: &str) -> bool {
    t.node_id == node && t.state() >= TaskState::Assigned
}

fn refs(t: &Task) -> Refs {
    if t.state().is_terminal() {
        return Refs::default();
    }
    let container = t.spec.as_ref().and_then(|s| s.container.as_ref());
    Refs {
        secrets: container
            .map(|c| c.secrets.iter().map(|s| s.secret_id.clone()).collect())
            .unwrap_or_default(),
        configs: container
            .map(|c| c.configs.iter().map(|s| s.config_id.clone()).collect())
            .unwrap_or_default(),
        networks: t
            .networks
            .iter()
            .filter_map(|a| a.network.as_ref().map(|n| n.id.clone()))
            .collect(),
    }
}

fn change(item: assignment::Item, action: AssignmentAction) -> AssignmentChange {
    AssignmentChange {
        assignment: Some(Assignment { item: Some(item) }),
        action: action.into(),
    }
}

fn task_networks(t: &Task) -> impl Iterator<Item = String> + '_ {
    t.networks
        .iter()
        .filter_map(|a| a.network.as_ref().map(|n| n.id.clone()))
}

/// The fanout's state.
pub(crate) struct Fanout {
    store: Store,
    nodes: HashMap<String, NodeState>,
    network_nodes: HashMap<String, HashSet<String>>,
    dirty_networks: HashSet<String>,
}

impl Fanout {
    pub(crate) fn new(store: Store) -> Self {
        Fanout {
            store,
            nodes: HashMap::new(),
            network_nodes: HashMap::new(),
            dirty_networks: HashSet::new(),
        }
    }

    /// Runs until `cmds` closes.
    pub(crate) async fn run(
        mut self,
        mut cmds: mpsc::Receiver<FanoutCmd>,
        network_interval: Duration,
    ) {
        let filter = || {
            WatchFilter::all().capacity(200_000).kinds([
                swarm_store::Kind::Task,
                swarm_store::Kind::Secret,
                swarm_store::Kind::Config,
                swarm_store::Kind::Network,
                swarm_store::Kind::Service,
            ])
        };
        let mut watcher = self.store.watch(filter());
        let mut tick = tokio::time::interval(network_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(FanoutCmd::Attach { node, tx }) => self.attach(node, tx),
                    None => return,
                },
                event = watcher.recv() => match event {
                    Ok(e) => self.on_event(e),
                    Err(WatchError::Lagged) => {
                        tracing::warn!("assignment fanout fell behind the store; resending full sets");
                        watcher = self.store.watch(filter());
                        let attached: Vec<(String, AssignTx)> = self.nodes.drain().map(|(n, s)| (n, s.tx)).collect();
                        self.network_nodes.clear();
                        for (node, tx) in attached {
                            self.attach(node, tx);
                        }
                    }
                    Err(_) => return,
                },
                _ = tick.tick() => self.flush_networks(),
            }
        }
    }

    /// Sends the full set of a node's assignments and starts following it.
    fn attach(&mut self, node: String, tx: AssignTx) {
        self.detach(&node);
        let view = self.store.view();
        let mut state = NodeState {
            tx,
            seq: 0,
            tasks: HashMap::new(),
            secrets: HashMap::new(),
            configs: HashMap::new(),
            networks: HashMap::new(),
            pending: Vec::new(),
        };
        for t in view.find::<Task>(By::NodeId(&node)).unwrap_or_default() {
            if included(&t, &node) {
                state.pending.push(change(
                    assignment::Item::Task((*t).clone()),
                    AssignmentAction::Update,
                ));
                let r = refs(&t);
                swap_refs(
                    &mut state,
                    &view,
                    &Refs::default(),
                    &r,
                    &node,
                    &mut self.network_nodes,
                );
                state.tasks.insert(t.id.clone(), r);
            }
        }
        self.nodes.insert(node.clone(), state);
        self.send(&node, AssignmentsType::Complete);
    }

    fn detach(&mut self, node: &str) {
        if let Some(state) = self.nodes.remove(node) {
            for net in state.networks.keys() {
                if let Some(set) = self.network_nodes.get_mut(net) {
                    set.remove(node);
                }
            }
        }
    }

    /// Sends what is pending for `node`; a closed or full stream detaches it
    /// (the agent reconnects and gets a full set).
    fn send(&mut self, node: &str, kind: AssignmentsType) {
        let Some(state) = self.nodes.get_mut(node) else {
            return;
        };
        if kind == AssignmentsType::Incremental && state.pending.is_empty() {
            return;
        }
        let applies_to = state.seq.to_string();
        state.seq += 1;
        let msg = AssignmentsMessage {
            r#type: kind.into(),
            applies_to: if kind == AssignmentsType::Complete {
                String::new()
            } else {
                applies_to
            },
            results_in: state.seq.to_string(),
            changes: std::mem::take(&mut state.pending),
        };
        if state.tx.try_send(Ok(msg)).is_err() {
            tracing::debug!(node, "assignments stream closed or too slow; detaching");
            self.detach(node);
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Commit { .. } => {
                let nodes: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(_, s)| !s.pending.is_empty())
                    .map(|(n, _)| n.clone())
                    .collect();
                for n in nodes {
                    self.send(&n, AssignmentsType::Incremental);
                }
            }
            Event::Created(o) => self.on_object(None, Some(o)),
            Event::Updated { old, new } => self.on_object(Some(old), Some(new)),
            Event::Deleted(o) => self.on_object(Some(o), None),
        }
    }

    fn on_object(&mut self, old: Option<AnyObject>, new: Option<AnyObject>) {
        match (&old, &new) {
            (Some(AnyObject::Task(_)), _) | (_, Some(AnyObject::Task(_))) => {
                let old = old.and_then(|o| o.downcast::<Task>().cloned());
                let new = new.and_then(|o| o.downcast::<Task>().cloned());
                self.on_task(old.as_deref(), new.as_deref());
            }
            (_, Some(AnyObject::Secret(s))) => {
                self.on_item(&s.id, assignment::Item::Secret((**s).clone()), true)
            }
            (Some(AnyObject::Secret(s)), None) => self.on_item(
                &s.id,
                assignment::Item::Secret(Secret {
                    id: s.id.clone(),
                    ..Default::default()
                }),
                false,
            ),
            (_, Some(AnyObject::Config(c))) => {
                self.on_item(&c.id, assignment::Item::Config((**c).clone()), true)
            }
            (Some(AnyObject::Config(c)), None) => self.on_item(
                &c.id,
                assignment::Item::Config(Config {
                    id: c.id.clone(),
                    ..Default::default()
                }),
                false,
            ),
            (_, Some(AnyObject::Network(n))) | (Some(AnyObject::Network(n)), None) => {
                self.dirty_networks.insert(n.id.clone());
            }
            (o, n) => {
                for s in [o, n].into_iter().flatten() {
                    if let Some(s) = s.downcast::<Service>() {
                        self.service_networks_dirty(s);
                    }
                }
            }
        }
    }

    fn service_networks_dirty(&mut self, s: &Service) {
        let spec_nets = s
            .spec
            .iter()
            .flat_map(|x| x.task.iter())
            .flat_map(|t| t.networks.iter().map(|n| n.target.clone()));
        let vip_nets = s
            .endpoint
            .iter()
            .flat_map(|e| e.virtual_ips.iter().map(|v| v.network_id.clone()));
        let nets: Vec<String> = spec_nets.chain(vip_nets).collect();
        self.dirty_networks.extend(nets);
    }

    /// A secret or config changed or went away: tell the nodes holding it.
    fn on_item(&mut self, id: &str, item: assignment::Item, updated: bool) {
        let action = if updated {
            AssignmentAction::Update
        } else {
            AssignmentAction::Remove
        };
        for state in self.nodes.values_mut() {
            let held = match &item {
                assignment::Item::Secret(_) => state.secrets.contains_key(id),
                assignment::Item::Config(_) => state.configs.contains_key(id),
                _ => false,
            };
            if held {
                state.pending.push(change(item.clone(), action));
            }
        }
    }

    fn on_task(&mut self, old: Option<&Task>, new: Option<&Task>) {
        for t in [old, new].into_iter().flatten() {
            let nets: Vec<String> = task_networks(t).collect();
            self.dirty_networks.extend(nets);
        }
        let id = new.or(old).map(|t| t.id.clone()).unwrap_or_default();
        let mut targets: Vec<String> = Vec::new();
        for t in [old, new].into_iter().flatten() {
            if !t.node_id.is_empty() && !targets.contains(&t.node_id) {
                targets.push(t.node_id.clone());
            }
        }
        if targets.iter().all(|n| !self.nodes.contains_key(n)) {
            return;
        }
        let view = self.store.view();
        for node in targets {
            let Some(state) = self.nodes.get_mut(&node) else {
                continue;
            };
            let now_in = new.filter(|t| included(t, &node));
            let before = state.tasks.get(&id).cloned();
            match (before, now_in) {
                (before, Some(t)) => {
                    state.pending.push(change(
                        assignment::Item::Task(t.clone()),
                        AssignmentAction::Update,
                    ));
                    let r = refs(t);
                    let b = before.unwrap_or_default();
                    swap_refs(state, &view, &b, &r, &node, &mut self.network_nodes);
                    state.tasks.insert(id.clone(), r);
                }
                (Some(b), None) => {
                    let stub = Task {
                        id: id.clone(),
                        ..Default::default()
                    };
                    state.pending.push(change(
                        assignment::Item::Task(stub),
                        AssignmentAction::Remove,
                    ));
                    swap_refs(
                        state,
                        &view,
                        &b,
                        &Refs::default(),
                        &node,
                        &mut self.network_nodes,
                    );
                    state.tasks.remove(&id);
                }
                (None, None) => {}
            }
        }
    }

    /// Sends the current state of every changed network to its nodes.
    fn flush_networks(&mut self) {
        if self.dirty_networks.is_empty() {
            return;
        }
        let view = self.store.view();
        for net in std::mem::take(&mut self.dirty_networks) {
            let Some(nodes) = self.network_nodes.get(&net) else {
                continue;
            };
            let Some(nv) = network_view::build(&view, &net) else {
                continue;
            };
            let nodes: Vec<String> = nodes.iter().cloned().collect();
            for node in nodes {
                if let Some(state) = self.nodes.get_mut(&node) {
                    state.pending.push(change(
                        assignment::Item::Network(nv.clone()),
                        AssignmentAction::Update,
                    ));
                }
                self.send(&node, AssignmentsType::Incremental);
            }
        }
    }
}

/// Moves a task's references from `old` to `new`, sending what the node
/// starts or stops needing (only the difference: an update that keeps its
/// references sends nothing extra).
fn swap_refs(
    state: &mut NodeState,
    view: &Arc<ReadTx>,
    old: &Refs,
    new: &Refs,
    node: &str,
    network_nodes: &mut HashMap<String, HashSet<String>>,
) {
    for s in new.secrets.iter().filter(|s| !old.secrets.contains(s)) {
        if acquire(&mut state.secrets, s)
            && let Some(secret) = view.get::<Secret>(s)
        {
            state.pending.push(change(
                assignment::Item::Secret((*secret).clone()),
                AssignmentAction::Update,
            ));
        }
    }
    for c in new.configs.iter().filter(|c| !old.configs.contains(c)) {
        if acquire(&mut state.configs, c)
            && let Some(config) = view.get::<Config>(c)
        {
            state.pending.push(change(
                assignment::Item::Config((*config).clone()),
                AssignmentAction::Update,
            ));
        }
    }
    for net in new.networks.iter().filter(|n| !old.networks.contains(n)) {
        if acquire(&mut state.networks, net) {
            network_nodes
                .entry(net.clone())
                .or_default()
                .insert(node.to_string());
            if let Some(nv) = network_view::build(view, net) {
                state.pending.push(change(
                    assignment::Item::Network(nv),
                    AssignmentAction::Update,
                ));
            }
        }
    }
    for s in old.secrets.iter().filter(|s| !new.secrets.contains(s)) {
        if release(&mut state.secrets, s) {
            let stub = Secret {
                id: s.clone(),
                ..Default::default()
            };
            state.pending.push(change(
                assignment::Item::Secret(stub),
                AssignmentAction::Remove,
            ));
        }
    }
    for c in old.configs.iter().filter(|c| !new.configs.contains(c)) {
        if release(&mut state.configs, c) {
            let stub = Config {
                id: c.clone(),
                ..Default::default()
            };
            state.pending.push(change(
                assignment::Item::Config(stub),
                AssignmentAction::Remove,
            ));
        }
    }
    for net in old.networks.iter().filter(|n| !new.networks.contains(n)) {
        if release(&mut state.networks, net) {
            if let Some(set) = network_nodes.get_mut(net) {
                set.remove(node);
            }
            let stub = NetworkView {
                network: Some(Network {
                    id: net.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            state.pending.push(change(
                assignment::Item::Network(stub),
                AssignmentAction::Remove,
            ));
        }
    }
}

/// Takes one reference; true when it is the first.
fn acquire(counts: &mut HashMap<String, usize>, id: &str) -> bool {
    let n = counts.entry(id.to_string()).or_insert(0);
    *n += 1;
    *n == 1
}

/// Drops one reference; true when it was the last.
fn release(counts: &mut HashMap<String, usize>, id: &str) -> bool {
    match counts.get_mut(id) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            counts.remove(id);
            true
        }
        None => false,
    }
}
