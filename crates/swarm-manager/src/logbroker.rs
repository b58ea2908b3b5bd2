//! Task logs through the managers: a client subscribes (`Logs`), the
//! leader asks the agents running the selected tasks to publish
//! (`LogBroker`), and relays what they send. Logs never enter raft.

use std::collections::{HashMap, HashSet};
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
use swarm_store::{By, Store};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::authorize_control;
use crate::dispatcher::ClusterInfo;

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

struct Subscription {
    tx: mpsc::Sender<Result<SubscribeLogsMessage, Status>>,
    waiting: HashSet<String>,
}

#[derive(Default)]
struct State {
    listeners: HashMap<String, mpsc::Sender<Result<SubscriptionMessage, Status>>>,
    subs: HashMap<String, Subscription>,
}

/// The log broker of a manager (serves `Logs` and `LogBroker`).
#[derive(Clone)]
pub struct LogBrokerService {
    store: Store,
    info: Arc<dyn ClusterInfo>,
    dial: Arc<dyn Connector>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for LogBrokerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBrokerService").finish_non_exhaustive()
    }
}

impl LogBrokerService {
    /// A broker over `store`.
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

    /// The tasks selected, grouped by node.
    fn targets(&self, selector: &LogSelector) -> HashMap<String, Vec<String>> {
        let view = self.store.view();
        let mut tasks: Vec<std::sync::Arc<Task>> = Vec::new();
        for s in &selector.service_ids {
            let id = view
                .lookup::<Service>(s)
                .map(|s| s.id.clone())
                .unwrap_or_else(|_| s.clone());
            tasks.extend(view.find::<Task>(By::ServiceId(&id)).unwrap_or_default());
        }
        for n in &selector.node_ids {
            tasks.extend(view.find::<Task>(By::NodeId(n)).unwrap_or_default());
        }
        for t in &selector.task_ids {
            if let Ok(t) = view.lookup::<Task>(t) {
                tasks.push(t);
            }
        }
        let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
        for t in tasks {
            if !t.node_id.is_empty() {
                let ids = by_node.entry(t.node_id.clone()).or_default();
                if !ids.contains(&t.id) {
                    ids.push(t.id.clone());
                }
            }
        }
        by_node
    }

    fn close(&self, id: &str) {
        let mut st = self.state.lock();
        if let Some(sub) = st.subs.remove(id) {
            for node in sub.waiting {
                if let Some(l) = st.listeners.get(&node) {
                    let _ = l.try_send(Ok(SubscriptionMessage {
                        id: id.to_string(),
                        close: true,
                        ..Default::default()
                    }));
                }
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
        self.broker.close(&self.id);
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
        if !self.info.is_leader() {
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
            return Ok(Response::new(Box::pin(stream)));
        }
        let selector = body.selector.unwrap_or_default();
        let options = body.options.unwrap_or_default();
        let targets = self.targets(&selector);
        let id = swarm_api::id::new_id();
        let (tx, rx) = mpsc::channel(256);
        {
            let mut st = self.state.lock();
            let mut waiting = HashSet::new();
            for (node, tasks) in targets {
                let Some(listener) = st.listeners.get(&node) else {
                    continue;
                };
                let msg = SubscriptionMessage {
                    id: id.clone(),
                    selector: Some(LogSelector {
                        task_ids: tasks,
                        ..Default::default()
                    }),
                    options: Some(options.clone()),
                    close: false,
                };
                if listener.try_send(Ok(msg)).is_ok() {
                    waiting.insert(node);
                }
            }
            if waiting.is_empty() {
                // Nothing to wait for: the stream ends at once.
                return Ok(Response::new(Box::pin(futures::stream::empty())));
            }
            st.subs.insert(id.clone(), Subscription { tx, waiting });
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
        self.state.lock().listeners.insert(node, tx);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn publish_logs(
        &self,
        req: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let node = require_worker_or_manager(&req)?.node_id;
        let mut stream = req.into_inner();
        while let Some(msg) = stream.message().await? {
            let (tx, done) = {
                let mut st = self.state.lock();
                let Some(sub) = st.subs.get_mut(&msg.subscription_id) else {
                    continue;
                };
                if msg.close {
                    sub.waiting.remove(&node);
                }
                (sub.tx.clone(), sub.waiting.is_empty())
            };
            if !msg.messages.is_empty()
                && tx
                    .send(Ok(SubscribeLogsMessage {
                        messages: msg.messages,
                    }))
                    .await
                    .is_err()
            {
                self.close(&msg.subscription_id);
                continue;
            }
            if done {
                self.state.lock().subs.remove(&msg.subscription_id);
            }
        }
        Ok(Response::new(PublishLogsResponse {}))
    }
}
