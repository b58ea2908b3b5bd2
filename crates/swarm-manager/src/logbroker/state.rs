//! The broker's bookkeeping, without I/O: which agents listen for
//! subscriptions, and for each client subscription which nodes were asked,
//! which are to be asked once they connect (following), which still owe
//! their lines and what could not be read (not following).
//!
//! Channels are only written with `try_send` here (the caller holds the
//! broker's lock); what must be awaited comes back as [`Finished`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use swarm_api::v1::{LogSubscriptionOptions, SubscribeLogsMessage, SubscriptionMessage};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tonic::Status;

use super::selection::Selection;

/// Lines (or the final error) towards a client.
pub(crate) type ClientTx = mpsc::Sender<Result<SubscribeLogsMessage, Status>>;
/// Subscriptions towards an agent.
pub(crate) type ListenerTx = mpsc::Sender<Result<SubscriptionMessage, Status>>;

/// Tail asking a node for every line it keeps.
const ALL_LINES: i64 = -1;

/// One client's subscription.
struct Subscription {
    client: ClientTx,
    selection: Arc<Selection>,
    options: LogSubscriptionOptions,
    /// Nodes asked, with the tasks named to them.
    asked: BTreeMap<String, BTreeSet<String>>,
    /// Following: nodes to ask once they connect, with their tasks and
    /// the tail to ask for.
    pending: BTreeMap<String, (BTreeSet<String>, i64)>,
    /// Not following: asked nodes that have not sent all their lines.
    waiting: BTreeSet<String>,
    /// Not following: why some lines could not be read.
    missing: Vec<String>,
    /// Following: the store watch that finds the nodes of new tasks.
    watcher: Option<AbortHandle>,
}

impl Subscription {
    fn ended(self, error: Option<Status>) -> Finished {
        if let Some(w) = &self.watcher {
            w.abort();
        }
        Finished {
            client: self.client,
            error,
        }
    }
}

struct Listener {
    tx: ListenerTx,
    generation: u64,
}

/// A subscription that ended: its client is told why, if lines are
/// missing, and its stream ends once every sender is gone.
#[derive(Debug)]
pub(crate) struct Finished {
    client: ClientTx,
    error: Option<Status>,
}

impl Finished {
    /// Sends the error, if any, in the background (callers hold the lock
    /// or run in a destructor), then lets the stream end.
    pub(crate) fn deliver(self) {
        let Some(error) = self.error else { return };
        let client = self.client;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.send(Err(error)).await;
            });
        }
    }
}

/// What a publisher may publish for a subscription.
#[derive(Debug, Clone)]
pub(crate) struct Publishing {
    /// The tasks whose lines belong to the subscription.
    pub(crate) selection: Arc<Selection>,
    /// Where its lines go.
    pub(crate) client: ClientTx,
}

/// Listeners and subscriptions of one broker.
#[derive(Default)]
pub(crate) struct State {
    /// True while this manager leads (only a leader hands out
    /// subscriptions).
    pub(crate) leading: bool,
    listeners: HashMap<String, Listener>,
    generation: u64,
    subs: HashMap<String, Subscription>,
}

fn incomplete(missing: &[String]) -> Status {
    Status::unavailable(format!("incomplete log stream: {}", missing.join("; ")))
}

/// Asks `node` to serve subscription `id` for `tasks`, or records why it
/// cannot be.
fn ask(
    id: &str,
    sub: &mut Subscription,
    listeners: &HashMap<String, Listener>,
    node: &str,
    tasks: BTreeSet<String>,
    tail: i64,
) {
    let msg = SubscriptionMessage {
        id: id.to_string(),
        selector: Some(sub.selection.for_node(node, &tasks)),
        options: Some(LogSubscriptionOptions {
            tail,
            ..sub.options.clone()
        }),
        close: false,
    };
    let sent = listeners
        .get(node)
        .is_some_and(|l| l.tx.try_send(Ok(msg)).is_ok());
    if sent {
        sub.asked.insert(node.to_string(), tasks);
        if !sub.options.follow {
            sub.waiting.insert(node.to_string());
        }
    } else if sub.options.follow {
        tracing::debug!(
            subscription = id,
            node,
            "log subscription waits for the node to connect"
        );
        sub.pending.insert(node.to_string(), (tasks, tail));
    } else {
        sub.missing.push(format!("node {node} is not connected"));
    }
}

impl State {
    /// Registers the listener of `node`; returns its generation (for
    /// [`State::unlisten`]). A node listening again abandoned what it
    /// served on its previous stream: those subscriptions are asked again
    /// (following, from new lines on) or counted as incomplete.
    pub(crate) fn listen(&mut self, node: &str, tx: ListenerTx) -> (u64, Vec<Finished>) {
        self.generation += 1;
        let generation = self.generation;
        let replaced = self
            .listeners
            .insert(node.to_string(), Listener { tx, generation })
            .is_some();
        let finished = if replaced {
            self.node_gone(node, "reconnected")
        } else {
            Vec::new()
        };
        for (id, sub) in &mut self.subs {
            if let Some((tasks, tail)) = sub.pending.remove(node) {
                ask(id, sub, &self.listeners, node, tasks, tail);
            }
        }
        (generation, finished)
    }

    /// The listener `generation` of `node` went away.
    pub(crate) fn unlisten(&mut self, node: &str, generation: u64) -> Vec<Finished> {
        if self
            .listeners
            .get(node)
            .is_none_or(|l| l.generation != generation)
        {
            return Vec::new();
        }
        self.listeners.remove(node);
        self.node_gone(node, "disconnected")
    }

    fn node_gone(&mut self, node: &str, why: &str) -> Vec<Finished> {
        let mut done = Vec::new();
        for (id, sub) in &mut self.subs {
            let Some(tasks) = sub.asked.remove(node) else {
                continue;
            };
            if sub.options.follow {
                // Asked again when it is back; lines written meanwhile
                // are not sent.
                sub.pending.insert(node.to_string(), (tasks, 0));
            } else if sub.waiting.remove(node) {
                sub.missing
                    .push(format!("node {node} {why} before it sent all its lines"));
                if sub.waiting.is_empty() {
                    done.push(id.clone());
                }
            }
        }
        self.finish(done)
    }

    fn finish(&mut self, ids: Vec<String>) -> Vec<Finished> {
        ids.into_iter()
            .filter_map(|id| self.subs.remove(&id))
            .map(|sub| {
                let error = (!sub.missing.is_empty()).then(|| incomplete(&sub.missing));
                sub.ended(error)
            })
            .collect()
    }

    /// Adds subscription `id` and asks the nodes of `targets` (see
    /// [`Selection::targets`]). `Ok(false)` when nothing is selected and
    /// not following (the stream ends at once); an error when not
    /// following and no node that has the tasks is connected.
    pub(crate) fn subscribe(
        &mut self,
        id: &str,
        client: ClientTx,
        selection: Arc<Selection>,
        options: LogSubscriptionOptions,
        targets: BTreeMap<String, BTreeSet<String>>,
    ) -> Result<bool, Status> {
        let tail = options.tail;
        let mut sub = Subscription {
            client,
            selection,
            options,
            asked: BTreeMap::new(),
            pending: BTreeMap::new(),
            waiting: BTreeSet::new(),
            missing: Vec::new(),
            watcher: None,
        };
        for (node, tasks) in targets {
            ask(id, &mut sub, &self.listeners, &node, tasks, tail);
        }
        if !sub.options.follow && sub.waiting.is_empty() {
            if sub.missing.is_empty() {
                return Ok(false);
            }
            return Err(Status::unavailable(format!(
                "no logs could be read: {}",
                sub.missing.join("; ")
            )));
        }
        self.subs.insert(id.to_string(), sub);
        Ok(true)
    }

    /// Sets the store watch of subscription `id` (aborted when it ends).
    /// False when the subscription is already gone.
    pub(crate) fn set_watcher(&mut self, id: &str, watcher: AbortHandle) -> bool {
        match self.subs.get_mut(id) {
            Some(sub) => {
                sub.watcher = Some(watcher);
                true
            }
            None => {
                watcher.abort();
                false
            }
        }
    }

    /// Following: selected `tasks` are placed on `node`. A node already
    /// asked finds them itself; a node new to the subscription is asked
    /// for every line of them (they started after the subscription).
    pub(crate) fn placed(&mut self, id: &str, node: &str, tasks: BTreeSet<String>) {
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        if let Some(known) = sub.asked.get_mut(node) {
            known.extend(tasks);
        } else if let Some((known, _)) = sub.pending.get_mut(node) {
            known.extend(tasks);
        } else {
            tracing::debug!(subscription = id, node, "following logs on another node");
            ask(id, sub, &self.listeners, node, tasks, ALL_LINES);
        }
    }

    /// The client of subscription `id` went away: the nodes asked are told
    /// to stop.
    pub(crate) fn close(&mut self, id: &str) {
        let Some(sub) = self.subs.remove(id) else {
            return;
        };
        for node in sub.asked.keys() {
            if let Some(l) = self.listeners.get(node) {
                let _ = l.tx.try_send(Ok(SubscriptionMessage {
                    id: id.to_string(),
                    close: true,
                    ..Default::default()
                }));
            }
        }
        drop(sub.ended(None));
    }

    /// Checks that `node` may publish for subscription `id`: `Ok(None)`
    /// when the subscription is gone (its lines are dropped), an error
    /// when the node was never asked for it.
    pub(crate) fn publishing(&self, id: &str, node: &str) -> Result<Option<Publishing>, Status> {
        let Some(sub) = self.subs.get(id) else {
            return Ok(None);
        };
        if !sub.asked.contains_key(node) {
            return Err(Status::permission_denied(format!(
                "node {node} was not asked to publish logs for subscription {id}"
            )));
        }
        Ok(Some(Publishing {
            selection: sub.selection.clone(),
            client: sub.client.clone(),
        }))
    }

    /// `node` finished publishing subscription `id`: all its lines sent
    /// (`complete`), or its publication broke off.
    pub(crate) fn published(&mut self, id: &str, node: &str, complete: bool) -> Vec<Finished> {
        let Some(sub) = self.subs.get_mut(id) else {
            return Vec::new();
        };
        if sub.options.follow || !sub.waiting.remove(node) {
            return Vec::new();
        }
        if !complete {
            sub.missing
                .push(format!("node {node} stopped before it sent all its lines"));
        }
        if sub.waiting.is_empty() {
            return self.finish(vec![id.to_string()]);
        }
        Vec::new()
    }

    /// Leadership moved away: listeners are dropped (their agents move to
    /// the new leader) and every subscription ends with an error saying
    /// to subscribe again.
    pub(crate) fn stop_leading(&mut self) -> Vec<Finished> {
        self.leading = false;
        self.listeners.clear();
        self.subs
            .drain()
            .map(|(_, sub)| {
                sub.ended(Some(Status::unavailable(
                    "the manager relaying these logs is no longer the leader; subscribe again",
                )))
            })
            .collect()
    }

    /// Number of registered listeners (for tests and metrics).
    pub(crate) fn listeners(&self) -> usize {
        self.listeners.len()
    }

    /// Number of open subscriptions.
    pub(crate) fn subscriptions(&self) -> usize {
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::Receiver;

    type Rx<T> = Receiver<Result<T, Status>>;

    fn selection() -> Arc<Selection> {
        Arc::new(Selection::for_tests(&["svc"]))
    }

    fn targets(items: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        items
            .iter()
            .map(|(n, ts)| (n.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn options(follow: bool, tail: i64) -> LogSubscriptionOptions {
        LogSubscriptionOptions {
            follow,
            tail,
            ..Default::default()
        }
    }

    fn listener(st: &mut State, node: &str) -> (Rx<SubscriptionMessage>, u64) {
        let (tx, rx) = mpsc::channel(16);
        let (generation, finished) = st.listen(node, tx);
        assert!(finished.is_empty());
        (rx, generation)
    }

    /// The subscriptions a listener got: (id, tasks, tail, close).
    fn got(rx: &mut Rx<SubscriptionMessage>) -> Vec<(String, Vec<String>, i64, bool)> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            let m = m.unwrap();
            out.push((
                m.id,
                m.selector.unwrap_or_default().task_ids,
                m.options.unwrap_or_default().tail,
                m.close,
            ));
        }
        out
    }

    fn client() -> (ClientTx, Rx<SubscribeLogsMessage>) {
        mpsc::channel(16)
    }

    #[test]
    fn without_follow_the_connected_nodes_are_asked_and_missing_ones_reported() {
        let mut st = State::default();
        let (mut n1, _) = listener(&mut st, "n1");
        let (tx, _rx) = client();
        let open = st
            .subscribe(
                "s",
                tx,
                selection(),
                options(false, 2),
                targets(&[("n1", &["t1"]), ("n2", &["t2"])]),
            )
            .unwrap();
        assert!(open);
        assert_eq!(got(&mut n1), [("s".into(), vec!["t1".into()], 2, false)]);
        // n1 finishes: the subscription ends, saying n2's lines are missing.
        let finished = st.published("s", "n1", true);
        assert_eq!(finished.len(), 1);
        let err = finished[0].error.as_ref().unwrap();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(
            err.message().contains("node n2 is not connected"),
            "{err:?}"
        );
        assert_eq!(st.subscriptions(), 0);
    }

    #[test]
    fn without_follow_no_connected_node_is_an_error_and_no_task_an_empty_stream() {
        let mut st = State::default();
        let (tx, _rx) = client();
        let err = st
            .subscribe(
                "s",
                tx,
                selection(),
                options(false, -1),
                targets(&[("n1", &["t1"])]),
            )
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.message().contains("n1"), "{err:?}");
        let (tx, _rx) = client();
        let open = st
            .subscribe("s2", tx, selection(), options(false, -1), targets(&[]))
            .unwrap();
        assert!(!open);
        assert_eq!(st.subscriptions(), 0);
    }

    #[test]
    fn a_node_leaving_before_it_is_done_makes_the_stream_incomplete() {
        let mut st = State::default();
        let (_n1, generation) = listener(&mut st, "n1");
        let (tx, _rx) = client();
        st.subscribe(
            "s",
            tx,
            selection(),
            options(false, -1),
            targets(&[("n1", &["t1"])]),
        )
        .unwrap();
        assert!(
            st.unlisten("n1", generation + 1).is_empty(),
            "a stale listener"
        );
        let finished = st.unlisten("n1", generation);
        assert_eq!(finished.len(), 1);
        let err = finished[0].error.as_ref().unwrap();
        assert!(err.message().contains("n1 disconnected"), "{err:?}");
        assert_eq!(st.listeners(), 0);
    }

    #[test]
    fn following_asks_nodes_when_they_connect_and_again_after_a_reconnect() {
        let mut st = State::default();
        let (tx, _rx) = client();
        assert!(
            st.subscribe(
                "s",
                tx,
                selection(),
                options(true, 5),
                targets(&[("n1", &["t1"])])
            )
            .unwrap()
        );
        // Asked with the client's tail once it connects.
        let (mut n1, generation) = listener(&mut st, "n1");
        assert_eq!(got(&mut n1), [("s".into(), vec!["t1".into()], 5, false)]);
        // A task placed on a node already asked: the agent finds it itself.
        st.placed("s", "n1", BTreeSet::from(["t3".to_string()]));
        assert!(got(&mut n1).is_empty());
        // A task placed on a node new to the subscription: all its lines.
        let (mut n2, _) = listener(&mut st, "n2");
        st.placed("s", "n2", BTreeSet::from(["t2".to_string()]));
        assert_eq!(got(&mut n2), [("s".into(), vec!["t2".into()], -1, false)]);
        // n1 goes and comes back: asked again, for new lines only.
        assert!(st.unlisten("n1", generation).is_empty());
        assert!(st.publishing("s", "n1").is_err(), "not asked while away");
        let (mut n1, _) = listener(&mut st, "n1");
        assert_eq!(
            got(&mut n1),
            [("s".into(), vec!["t1".into(), "t3".into()], 0, false)]
        );
        assert!(st.publishing("s", "n1").unwrap().is_some());
        // The client leaves: both nodes are told to stop.
        st.close("s");
        assert_eq!(got(&mut n1), [("s".into(), vec![], 0, true)]);
        assert_eq!(got(&mut n2), [("s".into(), vec![], 0, true)]);
        assert_eq!(st.publishing("s", "n1").unwrap().map(|_| ()), None);
    }

    #[test]
    fn only_asked_nodes_may_publish() {
        let mut st = State::default();
        let (_n1, _) = listener(&mut st, "n1");
        let (_n2, _) = listener(&mut st, "n2");
        let (tx, _rx) = client();
        st.subscribe(
            "s",
            tx,
            selection(),
            options(true, 0),
            targets(&[("n1", &["t1"])]),
        )
        .unwrap();
        assert!(st.publishing("s", "n1").unwrap().is_some());
        let err = st.publishing("s", "n2").unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn losing_leadership_ends_everything() {
        let mut st = State {
            leading: true,
            ..State::default()
        };
        let (mut n1, _) = listener(&mut st, "n1");
        let (tx, _rx) = client();
        st.subscribe(
            "s",
            tx,
            selection(),
            options(true, 0),
            targets(&[("n1", &["t1"])]),
        )
        .unwrap();
        got(&mut n1);
        let finished = st.stop_leading();
        assert!(!st.leading);
        assert_eq!(finished.len(), 1);
        assert!(
            finished[0]
                .error
                .as_ref()
                .unwrap()
                .message()
                .contains("subscribe again")
        );
        assert_eq!((st.listeners(), st.subscriptions()), (0, 0));
        // The listener's stream ends: its sender is gone.
        assert!(matches!(
            n1.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
