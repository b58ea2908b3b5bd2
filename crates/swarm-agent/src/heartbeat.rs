//! Heartbeats of one dispatcher session.
//!
//! A [`Heartbeats`] sends each beat as one message on a long-lived
//! `HeartbeatStream` call and reads the manager's answer (the period until
//! the next beat) from the same call: after the first beat, a beat costs
//! one HTTP/2 DATA frame each way, where a unary `Heartbeat` call opens a
//! stream and sends headers and trailers every time. A manager that does
//! not know the streaming call (it answers UNIMPLEMENTED) is sent unary
//! `Heartbeat` calls instead, for the rest of the session.
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
//! loop {
//!     let period = beats.beat().await?;
//!     tokio::time::sleep(period.mul_f64(0.8)).await;
//! }
//! # }
//! ```

use std::time::Duration;

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
}

/// The heartbeats of one session (see the module docs).
pub struct Heartbeats {
    client: DispatcherClient<Channel>,
    session_id: String,
    transport: Transport,
    /// The streaming call, between beats.
    open: Option<Open>,
}

impl std::fmt::Debug for Heartbeats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeats")
            .field("session_id", &self.session_id)
            .field("transport", &self.transport)
            .field("open", &self.open.is_some())
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
        }
    }

    /// How beats are sent now ([`Transport::Unary`] after a fallback).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Sends one heartbeat and returns the period the manager asks for
    /// until the next one. Cancelling it (dropping the future) is safe: the
    /// next beat opens a new stream.
    pub async fn beat(&mut self) -> Result<Duration, Status> {
        let answer = match self.transport {
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
        };
        Ok(answer
            .period
            .and_then(|p| p.to_std().ok())
            .filter(|p| !p.is_zero())
            .unwrap_or(DEFAULT_PERIOD))
    }

    async fn unary(&mut self) -> Result<HeartbeatResponse, Status> {
        Ok(self
            .client
            .heartbeat(HeartbeatRequest {
                session_id: self.session_id.clone(),
            })
            .await?
            .into_inner())
    }

    async fn streamed(&mut self) -> Result<HeartbeatResponse, Status> {
        let request = HeartbeatRequest {
            session_id: self.session_id.clone(),
        };
        // The open call is taken out for the beat: if the beat is
        // cancelled, the call (whose next answer would be this beat's) is
        // dropped with it and the next beat opens a new one.
        let mut open = match self.open.take() {
            Some(open) => {
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
                Open { tx, rx: answers }
            }
        };
        match open.rx.message().await? {
            Some(answer) => {
                self.open = Some(open);
                Ok(answer)
            }
            None => Err(Status::unavailable(
                "the manager ended the heartbeat stream",
            )),
        }
    }
}
