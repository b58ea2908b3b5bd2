//! The agent's heartbeat client against small dispatchers on loopback: one
//! long-lived stream for all beats, a new stream after a cancelled beat,
//! and unary calls for a manager without the streaming call.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use swarm_agent::heartbeat::{Heartbeats, Transport};
use swarm_api::v1::dispatcher_client::DispatcherClient;
use swarm_api::v1::dispatcher_server::{Dispatcher, DispatcherServer};
use swarm_api::v1::*;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

const PERIOD: Duration = Duration::from_millis(1234);
const SESSION: &str = "the-session";

/// A dispatcher that only knows heartbeats, and counts them.
#[derive(Default, Clone)]
struct Beats {
    /// Serve `HeartbeatStream` (else answer UNIMPLEMENTED, as an older
    /// manager does).
    streaming: bool,
    unary: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    streamed: Arc<AtomicUsize>,
}

fn answer(session_id: &str) -> Result<HeartbeatResponse, Status> {
    if session_id != SESSION {
        return Err(Status::not_found("session invalid or expired"));
    }
    Ok(HeartbeatResponse {
        period: Some(PERIOD.into()),
    })
}

#[tonic::async_trait]
impl Dispatcher for Beats {
    type SessionStream = Answers<SessionMessage>;
    type AssignmentsStream = Answers<AssignmentsMessage>;
    type HeartbeatStreamStream = Answers<HeartbeatResponse>;

    async fn session(
        &self,
        _: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        Err(Status::unimplemented("heartbeats only"))
    }

    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.unary.fetch_add(1, Ordering::SeqCst);
        answer(&req.get_ref().session_id).map(Response::new)
    }

    async fn heartbeat_stream(
        &self,
        req: Request<tonic::Streaming<HeartbeatRequest>>,
    ) -> Result<Response<Self::HeartbeatStreamStream>, Status> {
        if !self.streaming {
            return Err(Status::unimplemented("no streaming heartbeats here"));
        }
        self.streams.fetch_add(1, Ordering::SeqCst);
        let streamed = self.streamed.clone();
        Ok(Response::new(Box::pin(req.into_inner().map(move |b| {
            streamed.fetch_add(1, Ordering::SeqCst);
            answer(&b?.session_id)
        }))))
    }

    async fn update_task_status(
        &self,
        _: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        Err(Status::unimplemented("heartbeats only"))
    }

    async fn assignments(
        &self,
        _: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        Err(Status::unimplemented("heartbeats only"))
    }
}

/// Serves `beats` on a loopback port; a client of it.
async fn serve(beats: Beats) -> DispatcherClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DispatcherServer::new(beats))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    DispatcherClient::new(channel)
}

#[tokio::test]
async fn all_beats_of_a_session_share_one_stream() {
    let beats = Beats {
        streaming: true,
        ..Beats::default()
    };
    let mut hb = Heartbeats::new(serve(beats.clone()).await, SESSION.into());
    for _ in 0..5 {
        assert_eq!(hb.beat().await.unwrap(), PERIOD);
    }
    assert_eq!(hb.transport(), Transport::Stream);
    assert_eq!(beats.streams.load(Ordering::SeqCst), 1);
    assert_eq!(beats.streamed.load(Ordering::SeqCst), 5);
    assert_eq!(beats.unary.load(Ordering::SeqCst), 0);

    // A cancelled beat drops its stream; the next beat opens another. (Polled
    // once, the beat is sent and waits for its answer: on this one-thread
    // runtime, the server cannot answer before the beat is dropped.)
    assert!(hb.beat().now_or_never().is_none(), "the beat was cancelled");
    assert_eq!(hb.beat().await.unwrap(), PERIOD);
    assert_eq!(beats.streams.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_beat_is_an_error_and_the_next_opens_a_new_stream() {
    let beats = Beats {
        streaming: true,
        ..Beats::default()
    };
    let client = serve(beats.clone()).await;
    let mut wrong = Heartbeats::new(client.clone(), "stale".into());
    let err = wrong.beat().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    let err = wrong.beat().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    assert_eq!(beats.streams.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_manager_without_the_stream_gets_unary_calls() {
    let beats = Beats::default();
    let mut hb = Heartbeats::new(serve(beats.clone()).await, SESSION.into());
    for _ in 0..3 {
        assert_eq!(hb.beat().await.unwrap(), PERIOD);
    }
    assert_eq!(hb.transport(), Transport::Unary);
    assert_eq!(beats.unary.load(Ordering::SeqCst), 3);

    // Unary calls refuse a wrong session the same way.
    let mut wrong = Heartbeats::new(serve(Beats::default()).await, "stale".into());
    let err = wrong.beat().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
}
