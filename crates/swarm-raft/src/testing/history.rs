//! Recording a history of register operations from concurrent clients,
//! for the [linearizability checker](super::linearizable).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::linearizable::{Call, Op, Ret};

#[derive(Debug, Default)]
struct Shared {
    clock: AtomicU64,
    /// Every invoked operation; `None` once it certainly failed.
    ops: Mutex<Vec<Option<Op>>>,
}

/// A shared, append-only history. Clones record into the same history.
///
/// Times are taken from one counter that every invocation and return
/// advances, so an operation that returned before another was invoked
/// has the smaller times: the order a checker needs.
#[derive(Debug, Default, Clone)]
pub struct History {
    shared: Arc<Shared>,
}

/// An operation invoked and not yet resolved. Dropping it unresolved
/// leaves the outcome unknown (the caller may have been cancelled after
/// the request left).
#[derive(Debug)]
#[must_use = "an operation must be resolved (or is recorded as unknown)"]
pub struct Pending {
    history: History,
    slot: usize,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    fn tick(&self) -> u64 {
        self.shared.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Records the invocation of `call` on `key`, now.
    pub fn invoke(&self, key: &str, call: Call) -> Pending {
        let mut ops = self.shared.ops.lock();
        // Taken under the lock, so slots are in invocation order.
        let invoked = self.tick();
        ops.push(Some(Op {
            key: key.to_string(),
            call,
            invoked,
            returned: None,
        }));
        Pending {
            history: self.clone(),
            slot: ops.len() - 1,
        }
    }

    /// The operations recorded: those that returned, and those whose
    /// outcome is unknown; certain failures are left out.
    pub fn ops(&self) -> Vec<Op> {
        self.shared.ops.lock().iter().flatten().cloned().collect()
    }
}

impl Pending {
    /// The operation returned `ret`, now.
    pub fn returned(self, ret: Ret) {
        let at = self.history.tick();
        if let Some(Some(op)) = self.history.shared.ops.lock().get_mut(self.slot) {
            op.returned = Some((at, ret));
        }
    }

    /// The operation certainly had no effect: it is dropped from the
    /// history.
    pub fn failed(self) {
        if let Some(op) = self.history.shared.ops.lock().get_mut(self.slot) {
            *op = None;
        }
    }

    /// The operation may or may not have taken effect.
    pub fn unknown(self) {}
}
