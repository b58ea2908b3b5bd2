//! Task logs through the managers: a client subscribes (`Logs`), the
//! leader asks the agents running the selected tasks to publish
//! (`LogBroker`), and relays what they send. Logs never enter raft.
//!
//! - Only the leader hands out subscriptions. A follower forwards a
//!   client's subscription to the leader, and refuses an agent's
//!   `ListenSubscriptions` with `FAILED_PRECONDITION` and the leader's
//!   address (metadata key [`LEADER_ADDR_KEY`]), like the dispatcher.
//!   When leadership moves, listeners are dropped and open subscriptions
//!   end with `UNAVAILABLE` ("subscribe again").
//! - Not following: the nodes running the selected tasks send their tail
//!   and say they are done; the stream ends when all are. A node that is
//!   not connected, or goes away before it is done, makes the stream end
//!   with `UNAVAILABLE` "incomplete log stream: ..." after the lines that
//!   could be read (at once, "no logs could be read: ...", when no node
//!   could be asked).
//! - Following: nodes not connected are asked when they connect; a store
//!   watch finds the nodes of selected tasks placed later (restarts,
//!   scale-ups, updates), which are asked for every line of them; an
//!   agent already asked picks up new selected tasks itself. A node that
//!   reconnects is asked again for new lines only.
//! - A publisher is checked: it must have been asked for the subscription,
//!   and each line must come from a selected task that the store places
//!   on that node (lines of tasks the store no longer knows are dropped).
//! - A listener is forgotten when its stream ends (agent disconnected),
//!   and a subscription when its client goes away (its nodes are told to
//!   stop).

mod selection;
mod state;

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use swarm_api::v1::log_broker_server::{LogBroker, LogBrokerServer};
use swarm_api::v1::logs_client::LogsClient;
use swarm_api::v1::logs_server::{Logs, LogsServer};
use swarm_api::v1::*;
use swarm_pki::require_worker_or_manager;
use swarm_raft::Connector;
use swarm_store::{AnyObject, Event, Kind, Store, WatchError, WatchFilter, Watcher};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::authorize_control;
pub use crate::dispatcher::LEADER_ADDR_KEY;
use crate::dispatcher::{ClusterInfo, not_leader};
use selection::Selection;
use state::{Finished, State};

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The log broker of a manager (serves `Logs` and `LogBroker`). Cheap to
/// clone.
#[derive(Clone)]
pub struct LogBrokerService {
    store: Store,
    info: Arc<dyn ClusterInfo>,
    dial: Arc<dyn Connector>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for LogBrokerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("LogBrokerService")
            .field("leading", &st.leading)
            .field("listeners", &st.listeners())
            .field("subscriptions", &st.subscriptions())
            .finish_non_exhaustive()
    }
}

fn deliver(finished: Vec<Finished>) {
    for f in finished {
        f.deliver();
    }
}

impl LogBrokerService {
    /// A broker over `store`; it hands out subscriptions only once
    /// [`LogBrokerService::start_leading`] ran.
    pub fn new(store: Store, info: Arc<dyn ClusterInfo>, dial: Arc<dyn Connector>) -> Self {
        LogBrokerService {
            store,
            info,
            dial,
            state: Arc::default(),
        }
    }

    /// The client-facing server.
    pub fn logs_server(&self) -> LogsServer<Self> {
        LogsServer::new(self.clone())
    }

    /// The agent-facing server.
    pub fn broker_server(&self) -> LogBrokerServer<Self> {
        LogBrokerServer::new(self.clone())
    }

    /// This manager became leader: agents may listen here.
    pub fn start_leading(&self) {
        self.state.lock().leading = true;
    }

    /// This manager stopped leading: listeners are dropped and open
    /// subscriptions end with an error.
    pub fn stop_leading(&self) {
        let finished = self.state.lock().stop_leading();
        deliver(finished);
    }

    /// Number of agents listening for subscriptions here.
    pub fn listeners(&self) -> usize {
        self.state.lock().listeners()
    }

    /// Number of open client subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.state.lock().subscriptions()
    }

    fn leading(&self) -> bool {
        self.state.lock().leading && self.info.is_leader()
    }

    /// A follower passes the subscription to the leader.
    async fn forward(
        &self,
        body: SubscribeLogsRequest,
    ) -> Result<Response<Out<SubscribeLogsMessage>>, Status> {
        let addr = self
            .info
            .leader_addr()
            .ok_or_else(|| Status::unavailable("no leader elected; retry"))?;
        let channel = self
            .dial
            .channel(&addr)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let stream = LogsClient::new(channel)
            .subscribe_logs(body)
            .await?
            .into_inner();
        Ok(Response::new(Box::pin(stream)))
    }

    fn task_filter(selection: &Arc<Selection>) -> WatchFilter {
        let selection = selection.clone();
        WatchFilter::all()
            .kinds([Kind::Task])
            .commits(false)
            .matching(move |e| match e.object() {
                Some(AnyObject::Task(t)) => !t.node_id.is_empty() && selection.selects(t),
                _ => false,
            })
    }

    /// Following: asks the nodes of selected tasks placed from now on.
    async fn follow_placements(self, id: String, selection: Arc<Selection>, mut watcher: Watcher) {
        loop {
            match watcher.recv().await {
                Ok(
                    Event::Created(AnyObject::Task(t))
                    | Event::Updated {
                        new: AnyObject::Task(t),
                        ..
                    },
                ) => {
                    if !t.node_id.is_empty() && selection.selects(&t) {
                        let tasks = BTreeSet::from([t.id.clone()]);
                        self.state.lock().placed(&id, &t.node_id, tasks);
                    }
                }
                Ok(_) => {}
                Err(WatchError::Lagged) => {
                    // Fell behind: look at everything again.
                    let (targets, w) = self
                        .store
                        .view_and_watch(Self::task_filter(&selection), |v| selection.targets(v));
                    watcher = w;
                    let mut st = self.state.lock();
                    for (node, tasks) in targets {
                        st.placed(&id, &node, tasks);
                    }
                }
                Err(_) => return,
            }
        }
    }
}

/// Ends a subscription when its client goes away (the response stream is
/// dropped), telling the agents to stop publishing.
struct CloseOnDrop {
    broker: LogBrokerService,
    id: String,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.broker.state.lock().close(&self.id);
    }
}

/// Forgets a listener when its stream ends (the agent went away).
struct UnlistenOnDrop {
    broker: LogBrokerService,
    node: String,
    generation: u64,
}

impl Drop for UnlistenOnDrop {
    fn drop(&mut self) {
        let finished = self
            .broker
            .state
            .lock()
            .unlisten(&self.node, self.generation);
        deliver(finished);
    }
}

#[tonic::async_trait]
impl Logs for LogBrokerService {
    type SubscribeLogsStream = Out<SubscribeLogsMessage>;

    async fn subscribe_logs(
        &self,
        req: Request<SubscribeLogsRequest>,
    ) -> Result<Response<Self::SubscribeLogsStream>, Status> {
        authorize_control(&req)?;
        let body = req.into_inner();
        if !self.leading() {
            return self.forward(body).await;
        }
        let selector = body.selector.unwrap_or_default();
        let options = body.options.unwrap_or_default();
        let selection = Arc::new(Selection::resolve(&self.store.view(), &selector)?);
        // Following: the watch starts with the view the targets come
        // from, so no task placed in between is missed.
        let (targets, watcher) = if options.follow {
            let (t, w) = self
                .store
                .view_and_watch(Self::task_filter(&selection), |v| selection.targets(v));
            (t, Some(w))
        } else {
            (selection.targets(&self.store.view()), None)
        };
        let id = swarm_api::id::new_id();
        let (tx, rx) = mpsc::channel(256);
        let opened = {
            let mut st = self.state.lock();
            st.leading
                .then(|| st.subscribe(&id, tx, selection.clone(), options.clone(), targets))
        };
        match opened {
            // Leadership moved meanwhile.
            None => {
                return self
                    .forward(SubscribeLogsRequest {
                        selector: Some(selector),
                        options: Some(options),
                    })
                    .await;
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(false)) => return Ok(Response::new(Box::pin(futures::stream::empty()))),
            Some(Ok(true)) => {}
        }
        if let Some(watcher) = watcher {
            let task = tokio::spawn(
                self.clone()
                    .follow_placements(id.clone(), selection, watcher),
            );
            self.state.lock().set_watcher(&id, task.abort_handle());
        }
        let guard = CloseOnDrop {
            broker: self.clone(),
            id,
        };
        let stream = ReceiverStream::new(rx).map(move |m| {
            let _ = &guard;
            m
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl LogBroker for LogBrokerService {
    type ListenSubscriptionsStream = Out<SubscriptionMessage>;

    async fn listen_subscriptions(
        &self,
        req: Request<ListenSubscriptionsRequest>,
    ) -> Result<Response<Self::ListenSubscriptionsStream>, Status> {
        let node = require_worker_or_manager(&req)?.node_id;
        let (tx, rx) = mpsc::channel(64);
        let (generation, finished) = {
            let mut st = self.state.lock();
            if !(st.leading && self.info.is_leader()) {
                return Err(not_leader(self.info.as_ref()));
            }
            st.listen(&node, tx)
        };
        deliver(finished);
        tracing::debug!(node = %node, "agent listening for log subscriptions");
        let guard = UnlistenOnDrop {
            broker: self.clone(),
            node,
            generation,
        };
        let stream = ReceiverStream::new(rx).map(move |m| {
            let _ = &guard;
            m
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn publish_logs(
        &self,
        req: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let node = require_worker_or_manager(&req)?.node_id;
        let mut stream = req.into_inner();
        // Subscriptions this stream published for and has not closed.
        let mut open: BTreeSet<String> = BTreeSet::new();
        let result = self.relay(&node, &mut stream, &mut open).await;
        let finished: Vec<Finished> = {
            let mut st = self.state.lock();
            open.iter()
                .flat_map(|id| st.published(id, &node, false))
                .collect()
        };
        deliver(finished);
        result.map(|()| Response::new(PublishLogsResponse {}))
    }
}

impl LogBrokerService {
    /// Relays what `node` publishes until its stream ends.
    async fn relay(
        &self,
        node: &str,
        stream: &mut Streaming<PublishLogsMessage>,
        open: &mut BTreeSet<String>,
    ) -> Result<(), Status> {
        while let Some(msg) = stream.message().await? {
            let id = msg.subscription_id;
            let Some(publishing) = self.state.lock().publishing(&id, node)? else {
                // The subscription ended: its lines have nowhere to go.
                continue;
            };
            open.insert(id.clone());
            let messages = checked(&self.store, node, &publishing.selection, msg.messages)?;
            if !messages.is_empty()
                && publishing
                    .client
                    .send(Ok(SubscribeLogsMessage { messages }))
                    .await
                    .is_err()
            {
                self.state.lock().close(&id);
                open.remove(&id);
                continue;
            }
            if msg.close {
                open.remove(&id);
                let finished = self.state.lock().published(&id, node, true);
                deliver(finished);
            }
        }
        Ok(())
    }
}

/// The lines of `messages` that `node` may publish for `selection`, with
/// their context taken from the store. A line of a task the store places
/// on another node, or that is not selected, is refused; lines of tasks
/// the store no longer knows are dropped.
fn checked(
    store: &Store,
    node: &str,
    selection: &Selection,
    messages: Vec<LogMessage>,
) -> Result<Vec<LogMessage>, Status> {
    let view = store.view();
    let mut out = Vec::with_capacity(messages.len());
    for mut m in messages {
        let task_id = m.context.as_ref().map(|c| c.task_id.as_str()).unwrap_or("");
        let Some(task) = view.get::<Task>(task_id) else {
            continue;
        };
        if task.node_id != node || !selection.selects(&task) {
            return Err(Status::permission_denied(format!(
                "node {node} published lines of task {} that it was not asked for",
                task.id
            )));
        }
        m.context = Some(LogContext {
            service_id: task.service_id.clone(),
            node_id: task.node_id.clone(),
            task_id: task.id.clone(),
        });
        out.push(m);
    }
    Ok(out)
}
