//! The streaming heartbeat call over real mutual TLS: it checks the session
//! like the unary call, each message extends the node's deadline, and the
//! end of the stream is not a missed heartbeat.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use swarm_api::v1::dispatcher_client::DispatcherClient;
use swarm_api::v1::*;
use swarm_manager::Manager;
use swarm_pki::{JoinOptions, NodeTls};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// A joined node with an open session and nothing else running.
struct Joined {
    id: String,
    client: DispatcherClient<Channel>,
    session_id: String,
    /// The session stream, kept open for the whole test.
    _session: tonic::Streaming<SessionMessage>,
}

async fn node(m: &Manager) -> Joined {
    let token = m.join_tokens().unwrap().worker;
    let enrollment = swarm_pki::join(m.addr(), &token, &JoinOptions::default())
        .await
        .unwrap();
    let id = enrollment.credentials.identity().node_id.clone();
    let tls = NodeTls::new(enrollment).unwrap();
    let mut client = DispatcherClient::new(FakeAgent::channel(&tls, m.addr()));
    let mut session = client
        .session(SessionRequest::default())
        .await
        .unwrap()
        .into_inner();
    let session_id = session.message().await.unwrap().unwrap().session_id;
    Joined {
        id,
        client,
        session_id,
        _session: session,
    }
}

/// A heartbeat stream opened with the beat `first`: the sender of beats
/// and the answers.
async fn open(
    client: &mut DispatcherClient<Channel>,
    first: HeartbeatRequest,
) -> (
    mpsc::Sender<HeartbeatRequest>,
    tonic::Streaming<HeartbeatResponse>,
) {
    let (tx, rx) = mpsc::channel(4);
    tx.send(first).await.unwrap();
    let answers = client
        .heartbeat_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, answers)
}

fn beat(session_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        session_id: session_id.into(),
        sparse_answers: false,
    }
}

/// A beat that asks for sparse answers.
fn sparse(session_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        session_id: session_id.into(),
        sparse_answers: true,
    }
}

fn state(m: &Manager, id: &str) -> Option<NodeState> {
    let n = m.store().view().get::<Node>(id)?;
    Some(n.status.as_ref()?.state())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_beat_for_another_session_ends_the_stream_with_not_found() {
    init_logs();
    let dir = Dir::new("hbs-wrong");
    let m = builder(&dir.0).start().await.unwrap();
    let mut n = node(&m).await;

    // The right session is answered with the period, beat after beat.
    let (tx, mut answers) = open(&mut n.client, beat(&n.session_id)).await;
    for _ in 0..3 {
        let a = answers
            .message()
            .await
            .unwrap()
            .expect("an answer per beat");
        let period = a.period.unwrap().to_std().unwrap();
        let cfg = fast_dispatcher();
        assert!(
            period >= cfg.heartbeat_period && period <= cfg.heartbeat_period + cfg.heartbeat_jitter,
            "{period:?}"
        );
        tx.send(beat(&n.session_id)).await.unwrap();
    }
    answers.message().await.unwrap().unwrap();

    // A wrong session id ends the stream with NOT_FOUND.
    tx.send(beat("not-a-session")).await.unwrap();
    let err = answers.message().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");

    // So does a stream whose first beat is wrong; the unary call agrees.
    let (_tx, mut answers) = open(&mut n.client, beat("not-a-session")).await;
    let err = answers.message().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    let err = n.client.heartbeat(beat("not-a-session")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_beats_keep_the_node_ready_and_its_end_waits_for_the_grace() {
    init_logs();
    let dir = Dir::new("hbs-deadline");
    let m = builder(&dir.0).start().await.unwrap();
    let grace = fast_dispatcher().grace();
    let mut n = node(&m).await;
    eventually("node ready", || async {
        (state(&m, &n.id)? == NodeState::Ready).then_some(())
    })
    .await;

    // Beats on one stream for several grace periods: the node stays ready.
    let (tx, mut answers) = open(&mut n.client, beat(&n.session_id)).await;
    let until = Instant::now() + grace * 4;
    while Instant::now() < until {
        answers.message().await.unwrap().unwrap();
        assert_eq!(state(&m, &n.id), Some(NodeState::Ready));
        tokio::time::sleep(grace / 6).await;
        tx.send(beat(&n.session_id)).await.unwrap();
    }
    answers.message().await.unwrap().unwrap();
    let last_answer = Instant::now();
    assert_eq!(state(&m, &n.id), Some(NodeState::Ready));

    // The agent ends the stream (its session stream stays open): the node
    // is marked down only once the grace period after its last beat passed.
    drop(tx);
    assert!(
        answers.message().await.unwrap().is_none(),
        "the manager ends its side when the agent ends its side"
    );
    drop(answers);
    eventually("node down", || async {
        (state(&m, &n.id)? == NodeState::Down).then_some(())
    })
    .await;
    let silent = last_answer.elapsed();
    // The deadline was set (manager side) before the last answer arrived:
    // allow for that round trip.
    assert!(
        silent + Duration::from_millis(50) >= grace,
        "marked down {silent:?} after the last beat; the grace is {grace:?}"
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sparse_answers_come_every_nth_beat_and_a_refusal_still_ends_the_stream() {
    init_logs();
    let dir = Dir::new("hbs-sparse");
    let m = builder(&dir.0).start().await.unwrap();
    let every = fast_dispatcher().heartbeat_answer_every;
    assert!(every > 1, "the default answers one beat in {every}");
    let mut n = node(&m).await;
    let counted = || {
        m.dispatcher()
            .counters()
            .heartbeats
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = counted();

    // 2 × every + 1 beats, then the agent's side ends: the answers are
    // those of beats 0, every and 2 × every, in order, and nothing else.
    let beats = 2 * u64::from(every) + 1;
    let (tx, mut answers) = open(&mut n.client, sparse(&n.session_id)).await;
    for _ in 1..beats {
        tx.send(sparse(&n.session_id)).await.unwrap();
    }
    drop(tx);
    let mut got = Vec::new();
    while let Some(a) = answers.message().await.unwrap() {
        assert!(a.period.is_some());
        got.push(a.answer_every);
    }
    assert_eq!(got, vec![every; 3], "answers to beats 0, n and 2n only");
    // Every beat counted, answered or not (each pushed the deadline).
    assert_eq!(counted() - before, beats);

    // A refused beat that would not have been answered still ends the
    // stream, with NOT_FOUND, at once.
    let (tx, mut answers) = open(&mut n.client, sparse(&n.session_id)).await;
    answers
        .message()
        .await
        .unwrap()
        .expect("beat 0 is answered");
    tx.send(sparse("not-a-session")).await.unwrap();
    let err = answers.message().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    m.shutdown().await;
}
