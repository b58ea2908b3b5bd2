//! Heartbeats, as unary calls or as messages of one long-lived stream.
//!
//! Both go through [`Dispatcher::accept_beat`]: the session must be the
//! node's current one, and a beat pushes the node's deadline one grace
//! period ahead and answers the period to wait until the next beat. On the
//! stream, the caller's certificate is checked again on every message
//! (expiry, removal, root rotation), as it is on every unary call; the
//! first refused beat ends the stream with its status. The end of a stream
//! changes nothing: like a missed unary call, it only counts once the
//! deadline passes.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::{Stream, StreamExt};
use swarm_api::v1::{HeartbeatRequest, HeartbeatResponse};
use swarm_pki::auth::PeerInfo;
use tonic::Status;

use super::{Dispatcher, jittered};

/// The answers of a heartbeat stream.
pub(crate) type BeatStream =
    Pin<Box<dyn Stream<Item = Result<HeartbeatResponse, Status>> + Send + 'static>>;

impl Dispatcher {
    /// One heartbeat of `node` for `session_id`.
    pub(super) fn accept_beat(
        &self,
        node: &str,
        session_id: &str,
    ) -> Result<HeartbeatResponse, Status> {
        self.refuse_if_follower()?;
        let inner = &self.inner;
        inner
            .sessions
            .beat(node, session_id, Instant::now() + inner.grace())?;
        inner.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
        Ok(HeartbeatResponse {
            period: Some(jittered(inner.period.get(), &inner.config).into()),
        })
    }

    /// The answers to the heartbeats `incoming` from `peer`: one each, until
    /// the caller closes its side or a beat is refused.
    pub(super) fn beat_stream(
        &self,
        peer: PeerInfo,
        incoming: tonic::Streaming<HeartbeatRequest>,
    ) -> BeatStream {
        let this = self.clone();
        Box::pin(incoming.map(move |beat| {
            let beat = beat?;
            let identity = peer.check()?;
            this.accept_beat(&identity.node_id, &beat.session_id)
        }))
    }
}
