//! The agent's heartbeat client against small dispatchers on loopback: one
//! long-lived stream for all beats, a new stream after a cancelled beat,
//! and unary calls for a manager without the streaming call.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// Answer beats that ask for it sparsely: beats 0, n, 2n, ... of each
    /// stream (0: every beat, as a manager from before sparse answers).
    every: u32,
    /// Refuse every beat from now on (the session expired).
    refusing: Arc<AtomicBool>,
    unary: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    streamed: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

fn answer(session_id: &str) -> Result<HeartbeatResponse, Status> {
    if session_id != SESSION {
        return Err(Status::not_found("session invalid or expired"));
    }
    Ok(HeartbeatResponse {
        period: Some(PERIOD.into()),
        answer_every: 0,
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
        let this = self.clone();
        let mut n = 0u32;
        Ok(Response::new(Box::pin(req.into_inner().filter_map(
            move |b| {
                this.streamed.fetch_add(1, Ordering::SeqCst);
                let out = (|| {
                    let b = b?;
                    if this.refusing.load(Ordering::SeqCst) {
                        return Err(Status::not_found("session invalid or expired"));
                    }
                    let mut a = answer(&b.session_id)?;
                    let due = !b.sparse_answers || this.every <= 1 || n.is_multiple_of(this.every);
                    n += 1;
                    if !due {
                        return Ok(None);
                    }
                    a.answer_every = this.every;
                    this.answered.fetch_add(1, Ordering::SeqCst);
                    Ok(Some(a))
                })();
                futures::future::ready(out.transpose())
            },
        ))))
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

impl Beats {
    /// A manager with the streaming call that answers one sparse beat in
    /// `every`.
    fn sparse(every: u32) -> Beats {
        Beats {
            streaming: true,
            every,
            ..Beats::default()
        }
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

/// Fails instead of hanging if a beat waits for an answer that never comes.
async fn soon<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("no answer: the client waited for a beat the manager does not answer")
}

#[tokio::test]
async fn with_sparse_answers_only_the_answered_beats_are_waited_for() {
    let beats = Beats::sparse(3);
    let mut hb = Heartbeats::new(serve(beats.clone()).await, SESSION.into());
    for _ in 0..7 {
        assert_eq!(soon(hb.beat()).await.unwrap(), PERIOD);
    }
    assert_eq!(beats.streams.load(Ordering::SeqCst), 1);
    assert_eq!(beats.streamed.load(Ordering::SeqCst), 7);
    // Beats 0, 3 and 6 of the stream.
    assert_eq!(beats.answered.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refusal_between_answered_beats_comes_through_answer() {
    let beats = Beats::sparse(3);
    let mut hb = Heartbeats::new(serve(beats.clone()).await, SESSION.into());
    assert_eq!(soon(hb.beat()).await.unwrap(), PERIOD);
    beats.refusing.store(true, Ordering::SeqCst);
    // Beat 1 is not answered: it returns at once; the refusal that ends
    // the stream arrives through `answer`.
    assert_eq!(soon(hb.beat()).await.unwrap(), PERIOD);
    let err = soon(hb.answer()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    // The next beat opens a new stream, and is refused there too.
    let err = soon(hb.beat()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    assert_eq!(beats.streams.load(Ordering::SeqCst), 2);
}
