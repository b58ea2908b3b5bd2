//! Where the store's timestamps come from.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use swarm_api::v1::Timestamp;

/// A source of wall-clock time for `created_at`/`updated_at`.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to, for deterministic tests.
#[derive(Debug, Default, Clone)]
pub struct ManualClock {
    seconds: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock at `seconds` past the epoch.
    pub fn new(seconds: i64) -> Self {
        ManualClock {
            seconds: Arc::new(AtomicI64::new(seconds)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, seconds: i64) {
        self.seconds.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp {
            seconds: self.seconds.load(Ordering::SeqCst),
            nanos: 0,
        }
    }
}
