//! The log side of a fake agent: lines its tasks "wrote", and the
//! subscriptions a manager asks it to serve (tail, then follow), published
//! over the real `LogBroker` protocol.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use swarm_api::v1::log_broker_client::LogBrokerClient;
use swarm_api::v1::*;
use tokio::sync::{broadcast, oneshot};
use tonic::transport::Channel;

#[derive(Default)]
struct Inner {
    lines: Vec<LogMessage>,
    /// Subscriptions being served: dropping the sender ends one.
    serving: BTreeMap<String, oneshot::Sender<()>>,
    /// Every subscription id asked of this agent.
    asked: BTreeSet<String>,
    listening: bool,
}

/// Lines and subscriptions of one fake agent. Cheap to clone.
#[derive(Clone)]
pub struct AgentLogs {
    inner: Arc<Mutex<Inner>>,
    new_lines: broadcast::Sender<LogMessage>,
}

impl AgentLogs {
    pub fn new() -> AgentLogs {
        AgentLogs {
            inner: Arc::default(),
            new_lines: broadcast::channel(1024).0,
        }
    }

    /// A task on this agent writes a line to its stdout.
    pub fn write(&self, task: &Task, line: &str) {
        let msg = LogMessage {
            context: Some(LogContext {
                service_id: task.service_id.clone(),
                node_id: task.node_id.clone(),
                task_id: task.id.clone(),
            }),
            timestamp: Some(Timestamp::now()),
            stream: LogStream::Stdout.into(),
            data: line.as_bytes().to_vec(),
        };
        // Under the lock, so a subscription starting now sees the line
        // either in its backlog or as a new line, never both or neither.
        let mut inner = self.inner.lock();
        inner.lines.push(msg.clone());
        let _ = self.new_lines.send(msg);
    }

    /// True once a manager registered this agent as a log publisher.
    pub fn listening(&self) -> bool {
        self.inner.lock().listening
    }

    /// Subscriptions being served now.
    pub fn serving(&self) -> usize {
        self.inner.lock().serving.len()
    }

    /// Subscriptions ever asked of this agent.
    pub fn asked(&self) -> usize {
        self.inner.lock().asked.len()
    }

    /// Listens for subscriptions on `ch` (reconnecting) and serves them.
    pub fn serve(self, ch: Channel) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let _ = self.listen(ch.clone()).await;
                self.inner.lock().listening = false;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    }

    async fn listen(&self, ch: Channel) -> Result<(), tonic::Status> {
        let mut subs = LogBrokerClient::new(ch.clone())
            .listen_subscriptions(ListenSubscriptionsRequest {})
            .await?
            .into_inner();
        // The manager registers the listener before it answers.
        self.inner.lock().listening = true;
        while let Some(sub) = subs.message().await? {
            if sub.close {
                self.inner.lock().serving.remove(&sub.id);
                continue;
            }
            let (stop, stopped) = oneshot::channel();
            {
                let mut inner = self.inner.lock();
                inner.serving.insert(sub.id.clone(), stop);
                inner.asked.insert(sub.id.clone());
            }
            tokio::spawn(self.clone().publish(ch.clone(), sub, stopped));
        }
        Ok(())
    }

    /// Publishes one subscription: the tail of each selected task's lines,
    /// then (when following) new lines until the manager closes it.
    async fn publish(
        self,
        ch: Channel,
        sub: SubscriptionMessage,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let tasks: BTreeSet<String> = sub
            .selector
            .unwrap_or_default()
            .task_ids
            .into_iter()
            .collect();
        let options = sub.options.unwrap_or_default();
        let of_task = |m: &LogMessage| {
            m.context
                .as_ref()
                .is_some_and(|c| tasks.contains(&c.task_id))
        };
        let (backlog, mut follow) = {
            let inner = self.inner.lock();
            let mut per_task: BTreeMap<String, Vec<LogMessage>> = BTreeMap::new();
            for m in inner.lines.iter().filter(|m| of_task(m)) {
                let task = m
                    .context
                    .as_ref()
                    .map(|c| c.task_id.clone())
                    .unwrap_or_default();
                per_task.entry(task).or_default().push(m.clone());
            }
            let mut backlog = Vec::new();
            for lines in per_task.into_values() {
                let keep = usize::try_from(options.tail).unwrap_or(lines.len());
                backlog.extend(lines[lines.len().saturating_sub(keep)..].iter().cloned());
            }
            (backlog, self.new_lines.subscribe())
        };
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let call = tokio::spawn(async move {
            LogBrokerClient::new(ch)
                .publish_logs(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        let msg = |messages, close| PublishLogsMessage {
            subscription_id: sub.id.clone(),
            messages,
            close,
        };
        let _ = tx.send(msg(backlog, false)).await;
        if options.follow {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    line = follow.recv() => match line {
                        Ok(l) if of_task(&l) => {
                            if tx.send(msg(vec![l], false)).await.is_err() {
                                break;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    },
                }
            }
        }
        let _ = tx.send(msg(Vec::new(), true)).await;
        drop(tx);
        let _ = call.await;
        self.inner.lock().serving.remove(&sub.id);
    }
}
