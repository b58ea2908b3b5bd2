//! Log publishing, beside the dispatcher session: the agent listens for
//! the log subscriptions the leader hands out
//! (`LogBroker.ListenSubscriptions`) and serves each one
//! (`LogBroker.PublishLogs`): the last `tail` lines of each selected task,
//! then, when following, every new line (and every line of selected tasks
//! that start later on this node) until the manager closes the
//! subscription.
//!
//! It talks to the manager the dispatcher session is open with, over the
//! session's own mutual-TLS channel: the session already picks a manager,
//! follows a follower's redirect to the leader and reconnects with
//! backoff, and only the leader hands out subscriptions. When the session
//! moves, listening starts again on the new channel and the subscriptions
//! of the old one stop (the manager sends them again if it still wants
//! them). A listen that fails while the session stays is retried with the
//! agent's backoff.
//!
//! Only this node's tasks are ever published: the selection (service,
//! node or task ids) is matched against the tasks the worker holds.

mod wanted;

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SelectAll, Stream, StreamExt};
use swarm_api::v1::log_broker_client::LogBrokerClient;
use swarm_api::v1::{
    ListenSubscriptionsRequest, LogContext, LogMessage, PublishLogsMessage, SubscriptionMessage,
};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::backoff::Backoff;
use crate::exec::{LogLine, LogReader};
use crate::worker::Worker;
use wanted::{Wanted, batches};

/// Most lines taken from a task's buffer at a time.
const READ_LINES: usize = 1000;

/// Messages queued towards the manager per subscription.
const QUEUE: usize = 16;

/// What the publisher works with.
pub(crate) struct LogPublisher {
    /// The tasks (and their output).
    pub(crate) worker: Arc<Worker>,
    /// This node (put in the published lines' context).
    pub(crate) node_id: String,
    /// The open session's channel, `None` between sessions.
    pub(crate) session: watch::Receiver<Option<Channel>>,
    /// Set when the agent stops.
    pub(crate) stop: watch::Receiver<bool>,
    /// Delays between failed listens on the same session.
    pub(crate) backoff: Backoff,
}

/// Listens for subscriptions on each session's channel until the agent
/// stops.
pub(crate) async fn run(mut p: LogPublisher) {
    loop {
        let channel = loop {
            if *p.stop.borrow() {
                return;
            }
            if let Some(ch) = p.session.borrow_and_update().clone() {
                break ch;
            }
            tokio::select! {
                _ = p.stop.changed() => return,
                r = p.session.changed() => if r.is_err() { return },
            }
        };
        let began = tokio::time::Instant::now();
        let result = tokio::select! {
            _ = p.stop.changed() => return,
            r = p.session.changed() => {
                if r.is_err() {
                    return;
                }
                // A new session (or none): listen there instead.
                p.backoff.reset();
                continue;
            }
            r = listen(&p.worker, &p.node_id, channel) => r,
        };
        match result {
            Ok(()) => tracing::debug!("the manager ended the log subscriptions stream"),
            Err(e) => tracing::warn!(error = %e, "listening for log subscriptions failed"),
        }
        if began.elapsed() > Duration::from_secs(10) {
            p.backoff.reset();
        }
        let delay = p.backoff.next(&mut rand::rng());
        tokio::select! {
            _ = p.stop.changed() => return,
            r = p.session.changed() => if r.is_err() { return },
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Serves the subscriptions one manager hands out until its stream ends.
/// Dropping the future stops every publication it started.
async fn listen(
    worker: &Arc<Worker>,
    node_id: &str,
    channel: Channel,
) -> Result<(), tonic::Status> {
    let mut subs = LogBrokerClient::new(channel.clone())
        .listen_subscriptions(ListenSubscriptionsRequest {})
        .await?
        .into_inner();
    tracing::debug!("listening for log subscriptions");
    let mut running = JoinSet::new();
    let mut serving: HashMap<String, AbortHandle> = HashMap::new();
    while let Some(sub) = subs.message().await? {
        while running.try_join_next().is_some() {}
        serving.retain(|_, h| !h.is_finished());
        // A subscription sent again replaces the one being served.
        if let Some(old) = serving.remove(&sub.id) {
            old.abort();
        }
        if sub.close {
            tracing::debug!(subscription = %sub.id, "log subscription closed");
            continue;
        }
        tracing::debug!(subscription = %sub.id, "serving a log subscription");
        let id = sub.id.clone();
        let handle = running.spawn(publish(
            worker.clone(),
            node_id.to_string(),
            channel.clone(),
            sub,
        ));
        serving.insert(id, handle);
    }
    Ok(())
}

/// Publishes one subscription until it is served (no follow), the manager
/// refuses or goes away, or the task is aborted (closed).
async fn publish(worker: Arc<Worker>, node_id: String, channel: Channel, sub: SubscriptionMessage) {
    let id = sub.id.clone();
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut client = LogBrokerClient::new(channel);
    let call = client.publish_logs(ReceiverStream::new(rx));
    tokio::pin!(call);
    let wanted = Wanted::new(&sub, &node_id);
    let outbox = Outbox { id: id.clone(), tx };
    tokio::select! {
        r = &mut call => {
            if let Err(e) = r {
                tracing::warn!(subscription = %id, error = %e, "publishing logs refused");
            }
            return;
        }
        () = produce(&worker, &wanted, outbox) => {}
    }
    if let Err(e) = call.await {
        tracing::warn!(subscription = %id, error = %e, "publishing logs failed");
    }
}

/// Sends one subscription's messages.
struct Outbox {
    id: String,
    tx: mpsc::Sender<PublishLogsMessage>,
}

impl Outbox {
    /// Sends `messages` in batches; false once the call is gone.
    async fn send(&self, messages: Vec<LogMessage>) -> bool {
        for batch in batches(messages) {
            let msg = PublishLogsMessage {
                subscription_id: self.id.clone(),
                messages: batch,
                close: false,
            };
            if self.tx.send(msg).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Says no more lines come.
    async fn close(self) {
        let _ = self
            .tx
            .send(PublishLogsMessage {
                subscription_id: self.id,
                messages: Vec::new(),
                close: true,
            })
            .await;
    }
}

type Followed = Pin<Box<dyn Stream<Item = (LogContext, Vec<LogLine>)> + Send>>;

/// New lines of one task, as they come.
fn follow(ctx: LogContext, reader: LogReader) -> Followed {
    Box::pin(futures::stream::unfold(
        (ctx, reader),
        |(ctx, mut reader)| async move {
            let lines = reader.read(READ_LINES).await;
            Some(((ctx.clone(), lines), (ctx, reader)))
        },
    ))
}

/// Every line `reader` has now.
fn drain(reader: &mut LogReader) -> Vec<LogLine> {
    let mut out = Vec::new();
    loop {
        let lines = reader.read_now(READ_LINES);
        if lines.is_empty() {
            return out;
        }
        out.extend(lines);
    }
}

/// The backlog of the selected tasks, then (following) their new lines
/// and those of selected tasks that appear later.
async fn produce(worker: &Worker, wanted: &Wanted, outbox: Outbox) {
    let mut changes = worker.watch_log_sources();
    changes.borrow_and_update();
    let mut known: HashSet<String> = HashSet::new();
    let mut followed: SelectAll<Followed> = SelectAll::new();
    let mut backlog = Vec::new();
    for source in worker.log_sources() {
        if !wanted.selects(&source.context) || !known.insert(source.context.task_id.clone()) {
            continue;
        }
        let mut reader = source.buffer.reader(None);
        backlog.extend(wanted.backlog(&source.context, drain(&mut reader)));
        if wanted.follow {
            followed.push(follow(source.context, reader));
        }
    }
    // Oldest first across tasks, as a reader would expect.
    backlog.sort_by_key(|m| m.timestamp.map(|t| t.as_unix_nanos()));
    if !outbox.send(backlog).await {
        return;
    }
    if !wanted.follow {
        return outbox.close().await;
    }
    loop {
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
                // Tasks that appeared since: all their lines are new.
                let mut fresh = Vec::new();
                for source in worker.log_sources() {
                    if !wanted.selects(&source.context)
                        || !known.insert(source.context.task_id.clone())
                    {
                        continue;
                    }
                    tracing::debug!(task = %source.context.task_id, "following a new task's logs");
                    let mut reader = source.buffer.reader(None);
                    let lines = drain(&mut reader);
                    fresh.extend(lines.into_iter().filter_map(|l| wanted.message(&source.context, l)));
                    followed.push(follow(source.context, reader));
                }
                if !outbox.send(fresh).await {
                    return;
                }
            }
            Some((ctx, lines)) = followed.next() => {
                let messages = lines.into_iter().filter_map(|l| wanted.message(&ctx, l)).collect();
                if !outbox.send(messages).await {
                    return;
                }
            }
        }
    }
}
