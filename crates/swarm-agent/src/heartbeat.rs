//! Heartbeats of one dispatcher session.
//!
//! A [`Heartbeats`] sends each beat as one message on a long-lived
//! `HeartbeatStream` call, where a unary `Heartbeat` call opens a stream
//! and sends headers and trailers every time. It asks for sparse answers:
//! the manager answers the stream's first beat, one beat in
//! `answer_every` after it (4 by default), and period changes, and sends
//! nothing back for the others, so most beats cost it one DATA frame read.
//! [`Heartbeats::beat`] waits for the answer only on the beats that get
//! one; [`Heartbeats::answer`] delivers what the manager sends in between
//! (a new period, or a refusal that ended the stream). A manager that
//! answers every beat (one that predates sparse answers) is waited for on
//! every beat; one that does not know the streaming call (it answers
//! UNIMPLEMENTED) is sent unary `Heartbeat` calls instead, for the rest of
//! the session.
//!
//! The semantics are the unary call's: a beat for a session that is not the
//! node's current one is refused (NOT_FOUND), and any failure is returned
//! to the caller, who ends the session and registers again.
//!
//! ```no_run
//! # async fn demo(channel: tonic::transport::Channel) -> Result<(), tonic::Status> {
//! use swarm_agent::heartbeat::Heartbeats;
//! use swarm_api::v1::dispatcher_client::DispatcherClient;
//! let mut beats = Heartbeats::new(DispatcherClient::new(channel), "session id".into());
//! let mut period = beats.beat().await?;
//! loop {
//!     tokio::select! {
//!         () = tokio::time::sleep(period.mul_f64(0.8)) => period = beats.beat().await?,
//!         // A new period, or a refusal, between beats.
//!         answer = beats.answer() => period = answer?,
//!     }
//! }
//! # }
//! ```

use std::time::Duration;

use futures::FutureExt;
use swarm_api::v1::dispatcher_client::DispatcherClient;
use swarm_api::v1::{HeartbeatRequest, HeartbeatResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Period assumed when the manager names none (or zero).
const DEFAULT_PERIOD: Duration = swarm_api::defaults::HEARTBEAT_PERIOD;

/// How beats are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One message per beat on a long-lived `HeartbeatStream` call.
    Stream,
    /// One unary `Heartbeat` call per beat.
    Unary,
}

/// The open streaming call.
struct Open {
    /// Beats to send (the call's request stream).
    tx: mpsc::Sender<HeartbeatRequest>,
    /// The manager's answers.
    rx: tonic::Streaming<HeartbeatResponse>,
    /// Beats sent on it so far.
    sent: u64,
}

/// The heartbeats of one session (see the module docs).
pub struct Heartbeats {
    client: DispatcherClient<Channel>,
    session_id: String,
    transport: Transport,
    /// The streaming call, between beats.
    open: Option<Open>,
    /// The period the manager last asked for.
    period: Duration,
    /// On the stream, one beat in this many is answered (at least 1).
    answer_every: u32,
}

impl std::fmt::Debug for Heartbeats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeats")
            .field("session_id", &self.session_id)
            .field("transport", &self.transport)
            .field("open", &self.open.is_some())
            .field("period", &self.period)
            .field("answer_every", &self.answer_every)
            .finish()
    }
}

impl Heartbeats {
    /// Heartbeats for `session_id`, over the streaming call (falling back
    /// to unary calls if the manager does not know it).
    pub fn new(client: DispatcherClient<Channel>, session_id: String) -> Self {
        Heartbeats::with_transport(client, session_id, Transport::Stream)
    }

    /// Heartbeats for `session_id` over `transport`.
    pub fn with_transport(
        client: DispatcherClient<Channel>,
        session_id: String,
        transport: Transport,
    ) -> Self {
        Heartbeats {
            client,
            session_id,
            transport,
            open: None,
            period: DEFAULT_PERIOD,
            answer_every: 1,
        }
    }

    /// How beats are sent now ([`Transport::Unary`] after a fallback).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Sends one heartbeat and returns the period the manager asks for
    /// until the next one (the last one it named, for a beat it does not
    /// answer). Cancelling it (dropping the future) is safe: the next beat
    /// opens a new stream.
    pub async fn beat(&mut self) -> Result<Duration, Status> {
        match self.transport {
            Transport::Unary => self.unary().await?,
            Transport::Stream => match self.streamed().await {
                Err(s) if s.code() == Code::Unimplemented => {
                    tracing::info!("the manager has no streaming heartbeats: using unary calls");
                    self.transport = Transport::Unary;
                    self.open = None;
                    self.unary().await?
                }
                other => other?,
            },
        }
        Ok(self.period)
    }

    /// Waits for what the manager sends on the stream between beats: a
    /// new period (returned), or a refusal or the end of the stream (an
    /// error; the next beat opens a new stream). Pending for ever while no
    /// stream is open (unary calls are answered within their beat).
    /// Cancel-safe: meant for a `select!` beside the wait for the next beat.
    pub async fn answer(&mut self) -> Result<Duration, Status> {
        let Some(open) = self.open.as_mut() else {
            return std::future::pending().await;
        };
        let next = open.rx.message().await;
        if let Err(e) = self.take(next) {
            self.open = None;
            return Err(e);
        }
        Ok(self.period)
    }

    /// Takes one message read from the stream: an answer is learnt from;
    /// a refusal, or the end of the stream, is an error.
    fn take(&mut self, next: Result<Option<HeartbeatResponse>, Status>) -> Result<(), Status> {
        match next? {
            Some(answer) => {
                self.learn(&answer);
                Ok(())
            }
            None => Err(Status::unavailable(
                "the manager ended the heartbeat stream",
            )),
        }
    }

    /// Takes the period and answer rate from a manager's answer.
    fn learn(&mut self, answer: &HeartbeatResponse) {
        self.period = answer
            .period
            .and_then(|p| p.to_std().ok())
            .filter(|p| !p.is_zero())
            .unwrap_or(DEFAULT_PERIOD);
        self.answer_every = answer.answer_every.max(1);
    }

    async fn unary(&mut self) -> Result<(), Status> {
        let answer = self
            .client
            .heartbeat(HeartbeatRequest {
                session_id: self.session_id.clone(),
                sparse_answers: false,
            })
            .await?
            .into_inner();
        self.learn(&answer);
        Ok(())
    }

    /// Answers already received on `open` (a period change, a refusal,
    /// the end of the stream), without waiting.
    fn take_received(&mut self, open: &mut Open) -> Result<(), Status> {
        while let Some(next) = open.rx.message().now_or_never() {
            self.take(next)?;
        }
        Ok(())
    }

    async fn streamed(&mut self) -> Result<(), Status> {
        let request = HeartbeatRequest {
            session_id: self.session_id.clone(),
            sparse_answers: true,
        };
        // The open call is taken out for the beat: if the beat is
        // cancelled, the call (whose next answer may be this beat's) is
        // dropped with it and the next beat opens a new one.
        let mut open = match self.open.take() {
            Some(mut open) => {
                self.take_received(&mut open)?;
                open.tx
                    .send(request)
                    .await
                    .map_err(|_| Status::unavailable("heartbeat stream closed"))?;
                open
            }
            None => {
                // The first beat goes with the call, so that the manager
                // has a message to answer as soon as the call arrives.
                let (tx, rx) = mpsc::channel(1);
                tx.try_send(request)
                    .map_err(|_| Status::internal("a fresh channel refused a message"))?;
                let answers = self
                    .client
                    .heartbeat_stream(ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                Open {
                    tx,
                    rx: answers,
                    sent: 0,
                }
            }
        };
        let n = open.sent;
        open.sent += 1;
        // Beats 0, every, 2 × every, ... of the stream are answered.
        if n.is_multiple_of(u64::from(self.answer_every)) {
            let next = open.rx.message().await;
            self.take(next)?;
        }
        self.open = Some(open);
        Ok(())
    }
}
