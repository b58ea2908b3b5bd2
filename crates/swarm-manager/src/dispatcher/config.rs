//! Dispatcher timings.

use std::time::Duration;

use swarm_api::defaults;

/// Default of [`DispatcherConfig::heartbeat_answer_every`]: at the default
/// 5 s period an agent hears from its manager at least every 20 s, and the
/// manager answers a quarter of the beats it would otherwise.
pub const HEARTBEAT_ANSWER_EVERY: u32 = 4;

/// How often agents heartbeat and when they are declared down.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Heartbeat period asked of agents (SwarmKit default 5 s).
    pub heartbeat_period: Duration,
    /// Random extra added to each period, so agents spread out.
    pub heartbeat_jitter: Duration,
    /// A node missing this many periods is marked down (default 3).
    pub grace_multiplier: u32,
    /// Registrations accepted per node within `registration_window`.
    pub registrations_per_window: usize,
    /// Window of the registration rate limit (SwarmKit: 3 per 8 s).
    pub registration_window: Duration,
    /// Task status updates are written at least this often.
    pub status_flush_interval: Duration,
    /// ... or once this many are waiting.
    pub status_batch_limit: usize,
    /// Network state is sent to nodes at most this often.
    pub network_flush_interval: Duration,
    /// On heartbeat streams whose agent asks for sparse answers, one beat
    /// in this many is answered (besides the first, period changes and
    /// refusals), so an agent learns within this many periods that its
    /// manager stopped answering. 0 or 1: every beat is answered.
    pub heartbeat_answer_every: u32,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            heartbeat_period: defaults::HEARTBEAT_PERIOD,
            heartbeat_jitter: Duration::from_millis(500),
            grace_multiplier: defaults::HEARTBEAT_GRACE_MULTIPLIER,
            registrations_per_window: 3,
            registration_window: Duration::from_secs(8),
            status_flush_interval: Duration::from_millis(100),
            status_batch_limit: 10_000,
            network_flush_interval: Duration::from_millis(100),
            heartbeat_answer_every: HEARTBEAT_ANSWER_EVERY,
        }
    }
}

impl DispatcherConfig {
    /// How long a node may stay silent before it is marked down.
    pub fn grace(&self) -> Duration {
        self.heartbeat_period * self.grace_multiplier + self.heartbeat_jitter
    }
}
