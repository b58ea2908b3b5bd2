//! Watching the store: a stream of the changes each transaction commits,
//! followed by a commit marker.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::error::WatchError;
use crate::object::{AnyObject, Kind};

/// Default number of events a watcher may fall behind before it is dropped.
pub const DEFAULT_WATCH_CAPACITY: usize = 10_000;

/// One change, as a watcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An object was created.
    Created(AnyObject),
    /// An object was updated.
    Updated {
        /// Before.
        old: AnyObject,
        /// After.
        new: AnyObject,
    },
    /// An object was deleted (the object as it was).
    Deleted(AnyObject),
    /// The end of a transaction's events: the store is now at `version`.
    Commit {
        /// The store's version after the transaction.
        version: u64,
    },
}

impl Event {
    /// The kind of the object (`None` for a commit marker).
    pub fn kind(&self) -> Option<Kind> {
        self.object().map(AnyObject::kind)
    }

    /// The object as it is now (as it was, for a deletion).
    pub fn object(&self) -> Option<&AnyObject> {
        match self {
            Event::Created(o) | Event::Deleted(o) | Event::Updated { new: o, .. } => Some(o),
            Event::Commit { .. } => None,
        }
    }
}

type Predicate = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// Which events a watcher receives.
#[derive(Clone)]
pub struct WatchFilter {
    kinds: u8,
    predicate: Option<Predicate>,
    commits: bool,
    capacity: usize,
}

impl fmt::Debug for WatchFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchFilter")
            .field(
                "kinds",
                &Kind::ALL
                    .iter()
                    .filter(|k| self.kinds & k.bit() != 0)
                    .collect::<Vec<_>>(),
            )
            .field("predicate", &self.predicate.is_some())
            .field("commits", &self.commits)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for WatchFilter {
    fn default() -> Self {
        Self::all()
    }
}

impl WatchFilter {
    /// Every event of every kind, with commit markers.
    pub fn all() -> Self {
        WatchFilter {
            kinds: u8::MAX,
            predicate: None,
            commits: true,
            capacity: DEFAULT_WATCH_CAPACITY,
        }
    }

    /// Only objects of these kinds.
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = Kind>) -> Self {
        self.kinds = kinds.into_iter().fold(0, |acc, k| acc | k.bit());
        self
    }

    /// Only object events for which `f` returns true (evaluated at commit:
    /// keep it cheap).
    pub fn matching(mut self, f: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Self {
        self.predicate = Some(Arc::new(f));
        self
    }

    /// Whether commit markers are delivered (default: yes).
    pub fn commits(mut self, yes: bool) -> Self {
        self.commits = yes;
        self
    }

    /// Events the watcher may fall behind by before it is dropped.
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events.max(1);
        self
    }

    fn accepts(&self, e: &Event) -> bool {
        match e.kind() {
            None => self.commits,
            Some(k) => self.kinds & k.bit() != 0 && self.predicate.as_ref().is_none_or(|p| p(e)),
        }
    }
}

/// The receiving end of a watch. Dropping it ends the watch.
#[derive(Debug)]
pub struct Watcher {
    rx: mpsc::Receiver<Event>,
    lagged: Arc<AtomicBool>,
}

impl Watcher {
    fn ended(&self) -> WatchError {
        if self.lagged.load(Ordering::Acquire) {
            WatchError::Lagged
        } else {
            WatchError::Closed
        }
    }

    /// The next event. After the last buffered event of a dropped watcher,
    /// [`WatchError::Lagged`]; after the store is dropped, [`WatchError::Closed`].
    pub async fn recv(&mut self) -> Result<Event, WatchError> {
        match self.rx.recv().await {
            Some(e) => Ok(e),
            None => Err(self.ended()),
        }
    }

    /// The next event if one is buffered.
    pub fn try_recv(&mut self) -> Result<Option<Event>, WatchError> {
        match self.rx.try_recv() {
            Ok(e) => Ok(Some(e)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(self.ended()),
        }
    }

    /// The next event, blocking the thread (not for use inside an async runtime).
    pub fn blocking_recv(&mut self) -> Result<Event, WatchError> {
        match self.rx.blocking_recv() {
            Some(e) => Ok(e),
            None => Err(self.ended()),
        }
    }
}

/// The sending end, kept by the store.
pub(crate) struct Subscriber {
    filter: WatchFilter,
    tx: mpsc::Sender<Event>,
    lagged: Arc<AtomicBool>,
}

pub(crate) fn channel(filter: WatchFilter) -> (Subscriber, Watcher) {
    let (tx, rx) = mpsc::channel(filter.capacity);
    let lagged = Arc::new(AtomicBool::new(false));
    (
        Subscriber {
            filter,
            tx,
            lagged: lagged.clone(),
        },
        Watcher { rx, lagged },
    )
}

/// Delivers one transaction's events to every subscriber, dropping those
/// that are full (marked lagged) or gone.
pub(crate) fn publish(subscribers: &mut Vec<Subscriber>, events: &[Event]) {
    subscribers.retain(|s| {
        for e in events {
            if !s.filter.accepts(e) {
                continue;
            }
            match s.tx.try_send(e.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.lagged.store(true, Ordering::Release);
                    return false;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        true
    });
}
