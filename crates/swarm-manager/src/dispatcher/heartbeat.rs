//! Heartbeats, as unary calls or as messages of one long-lived stream.
//!
//! Both go through `Dispatcher::record_beat`: the session must be the
//! node's current one, and a beat pushes the node's deadline one grace
//! period ahead and answers the period to wait until the next beat. On the
//! stream, the caller's certificate is checked again on every message
//! (expiry, removal, root rotation), as it is on every unary call; the
//! first refused beat ends the stream with its status. The end of a stream
//! changes nothing: like a missed unary call, it only counts once the
//! deadline passes.
//!
//! An agent that asks for sparse answers (`sparse_answers` in its beats)
//! is answered only on the stream's first beat, on every
//! [`DispatcherConfig::heartbeat_answer_every`]-th one, and when the period
//! changed (see [`Answering`]): for most beats the manager reads one DATA
//! frame and sends nothing back, which halves what an idle agent costs it.
//! Refusals still end the stream at once.
//!
//! [`DispatcherConfig::heartbeat_answer_every`]: super::DispatcherConfig::heartbeat_answer_every

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use swarm_api::v1::{HeartbeatRequest, HeartbeatResponse};
use swarm_pki::auth::PeerInfo;
use tonic::Status;

use super::{Dispatcher, jittered};

/// The answers of a heartbeat stream.
pub(crate) type BeatStream =
    Pin<Box<dyn Stream<Item = Result<HeartbeatResponse, Status>> + Send + 'static>>;

impl Dispatcher {
    /// One heartbeat of `node` for `session_id`, and its answer.
    pub(super) fn accept_beat(
        &self,
        node: &str,
        session_id: &str,
    ) -> Result<HeartbeatResponse, Status> {
        let period = self.record_beat(node, session_id)?;
        Ok(self.answer(period, 0))
    }

    /// Checks and counts one heartbeat, pushing the node's deadline;
    /// returns the period in force (before jitter).
    fn record_beat(&self, node: &str, session_id: &str) -> Result<Duration, Status> {
        self.refuse_if_follower()?;
        let inner = &self.inner;
        inner
            .sessions
            .beat(node, session_id, Instant::now() + inner.grace())?;
        inner.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
        Ok(inner.period.get())
    }

    /// The answer naming `period` (jittered) and the answer rate.
    fn answer(&self, period: Duration, answer_every: u32) -> HeartbeatResponse {
        HeartbeatResponse {
            period: Some(jittered(period, &self.inner.config).into()),
            answer_every,
        }
    }

    /// The answers to the heartbeats `incoming` from `peer`: one each (or
    /// fewer, for an agent that asks for sparse answers), until the caller
    /// closes its side or a beat is refused.
    pub(super) fn beat_stream(
        &self,
        peer: PeerInfo,
        incoming: tonic::Streaming<HeartbeatRequest>,
    ) -> BeatStream {
        let this = self.clone();
        let mut answering = Answering::new(self.inner.config.heartbeat_answer_every);
        Box::pin(incoming.filter_map(move |beat| {
            let answer = (|| {
                let beat = beat?;
                let identity = peer.check()?;
                let period = this.record_beat(&identity.node_id, &beat.session_id)?;
                if !beat.sparse_answers {
                    return Ok(Some(this.answer(period, 0)));
                }
                // The period read once: the one answered is the one
                // recorded as announced.
                Ok(answering
                    .answers(period)
                    .then(|| this.answer(period, answering.every)))
            })();
            futures::future::ready(answer.transpose())
        }))
    }
}

/// Which beats of a stream with sparse answers are answered: beats 0,
/// `every`, 2 × `every`, ... (counted from the stream's start, so that the
/// agent knows which of its beats to wait for), and any beat at which the
/// period differs from the last one announced.
#[derive(Debug)]
pub(super) struct Answering {
    /// One beat in this many is answered (at least 1).
    every: u32,
    /// Beats seen on the stream.
    beats: u64,
    /// The base period last announced on it.
    announced: Option<Duration>,
}

impl Answering {
    /// For a new stream, answering one beat in `every` (0 counts as 1).
    pub(super) fn new(every: u32) -> Self {
        Answering {
            every: every.max(1),
            beats: 0,
            announced: None,
        }
    }

    /// Whether the next beat, accepted while the period is `period`, is
    /// answered.
    pub(super) fn answers(&mut self, period: Duration) -> bool {
        let n = self.beats;
        self.beats += 1;
        if n.is_multiple_of(u64::from(self.every)) || self.announced != Some(period) {
            self.announced = Some(period);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_secs(5);

    fn pattern(a: &mut Answering, periods: &[Duration]) -> Vec<bool> {
        periods.iter().map(|p| a.answers(*p)).collect()
    }

    #[test]
    fn the_first_beat_and_every_nth_are_answered() {
        let mut a = Answering::new(4);
        assert_eq!(
            pattern(&mut a, &[P; 9]),
            [true, false, false, false, true, false, false, false, true]
        );
        let mut every = Answering::new(0);
        assert_eq!(
            pattern(&mut every, &[P; 3]),
            [true; 3],
            "0 means every beat"
        );
    }

    #[test]
    fn a_period_change_is_announced_at_once() {
        let q = Duration::from_secs(2);
        let mut a = Answering::new(4);
        assert_eq!(
            pattern(&mut a, &[P, P, q, q, q, q, q]),
            [true, false, true, false, true, false, false],
            "beat 2 announces the change; beat 4 is a regular answer"
        );
    }
}
