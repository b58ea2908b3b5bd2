//! The authorization matrix over a real tonic service on loopback mTLS:
//! each kind of caller against an open call, a node call and a manager
//! call, compared with the table.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use swarm_api::health::HealthCheckRequest;
use swarm_api::health::health_client::HealthClient;
use swarm_api::v1::node_ca_client::NodeCaClient;
use swarm_api::v1::{GetRootCaCertificateRequest, NodeRole};
use swarm_pki::clock::ManualClock;
use swarm_pki::{
    ClientTls, ClientTlsBuilder, ClusterCa, ClusterTrust, CredentialsHandle, NodeChannelBuilder,
    NodeCredentials, RootCa,
};
use tonic::Code;

use common::{Manager, issue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The call succeeded.
    Ok,
    /// UNAUTHENTICATED: no certificate.
    NoCert,
    /// PERMISSION_DENIED: a valid node without the role.
    Denied,
    /// The TLS handshake refused the certificate.
    Refused,
}

use Outcome::{Denied, NoCert, Ok as Pass, Refused};

fn classify<T>(result: Result<T, tonic::Status>) -> Outcome {
    match result {
        Ok(_) => Pass,
        Err(s) if s.code() == Code::Unauthenticated => NoCert,
        Err(s) if s.code() == Code::PermissionDenied => Denied,
        Err(s) => {
            // A handshake refusal surfaces as a transport error.
            assert!(
                matches!(
                    s.code(),
                    Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
                ),
                "unexpected status {s:?}"
            );
            Refused
        }
    }
}

/// The three calls, each on its own fresh connection.
async fn probe(addr: &str, tls: &ClientTls) -> [Outcome; 3] {
    let builder = NodeChannelBuilder::new(tls.clone()).timeout(Duration::from_secs(10));
    let mut out = [Refused; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let Ok(channel) = builder.connect(addr).await else {
            *slot = Refused;
            continue;
        };
        *slot = match i {
            0 => classify(
                NodeCaClient::new(channel)
                    .get_root_ca_certificate(GetRootCaCertificateRequest {})
                    .await,
            ),
            1 => classify(
                HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await,
            ),
            _ => match HealthClient::new(channel)
                .watch(HealthCheckRequest::default())
                .await
            {
                Ok(resp) => {
                    let mut stream = resp.into_inner();
                    classify(stream.message().await)
                }
                Err(e) => classify::<()>(Err(e)),
            },
        };
    }
    out
}

fn client(trust: &ClusterTrust, creds: NodeCredentials) -> ClientTls {
    ClientTlsBuilder::new(CredentialsHandle::new(creds), trust.clone())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_matches_the_table() {
    let manager = Manager::start("clusterone").await;
    let addr = manager.addr();
    let ca = &manager.ca;
    // Every caller trusts this cluster's root, so only the server's
    // verdict on the caller's certificate is under test.
    let trust = ca.trust();

    let manager_node = swarm_api::id::new_id();
    manager.store.add_node(&manager_node, NodeRole::Manager);
    let worker_node = swarm_api::id::new_id();
    manager.store.add_node(&worker_node, NodeRole::Worker);

    // Another cluster: its own root.
    let other = ClusterCa::new("clustertwo", RootCa::generate(SystemTime::now()).unwrap()).unwrap();
    // Same root, another O: what only the cluster id check catches.
    let same_root_other_o = ClusterCa::new("clustertwo", manager.ca.signing_root()).unwrap();
    // Expired: issued 100 days ago for 90 days.
    let past = ManualClock::new(SystemTime::now() - Duration::from_secs(100 * 24 * 3600));
    let expired_ca =
        ClusterCa::with_clock("clusterone", manager.ca.signing_root(), Arc::new(past)).unwrap();
    // Removed: a valid worker certificate whose node was then removed.
    let removed_node = swarm_api::id::new_id();
    manager.store.add_node(&removed_node, NodeRole::Worker);
    let removed_creds = issue(ca, &removed_node, NodeRole::Worker);
    manager.store.remove_node(&removed_node);

    let table: Vec<(&str, ClientTls, [Outcome; 3])> = vec![
        //                                       open   node    manager
        (
            "manager",
            client(&trust, issue(ca, &manager_node, NodeRole::Manager)),
            [Pass, Pass, Pass],
        ),
        (
            "worker",
            client(&trust, issue(ca, &worker_node, NodeRole::Worker)),
            [Pass, Pass, Denied],
        ),
        (
            "foreign cluster (other root)",
            client(&trust, issue(&other, &worker_node, NodeRole::Manager)),
            [Refused, Refused, Refused],
        ),
        (
            "foreign cluster (same root, other O)",
            client(
                &trust,
                issue(&same_root_other_o, &manager_node, NodeRole::Manager),
            ),
            [Refused, Refused, Refused],
        ),
        (
            "expired",
            client(&trust, issue(&expired_ca, &manager_node, NodeRole::Manager)),
            [Refused, Refused, Refused],
        ),
        (
            "removed node",
            client(&trust, removed_creds),
            [Refused, Refused, Refused],
        ),
        (
            "no certificate",
            ClientTls::anonymous(trust.clone()).unwrap(),
            [Pass, NoCert, NoCert],
        ),
    ];

    let mut failures = Vec::new();
    for (who, tls, want) in &table {
        let got = probe(&addr, tls).await;
        if got != *want {
            failures.push(format!("{who}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_applies_to_open_connections_on_the_next_call() {
    let manager = Manager::start("clusterone").await;
    let node = swarm_api::id::new_id();
    manager.store.add_node(&node, NodeRole::Worker);
    let tls = client(
        &manager.ca.trust(),
        issue(&manager.ca, &node, NodeRole::Worker),
    );
    let channel = NodeChannelBuilder::new(tls)
        .connect(&manager.addr())
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    health.check(HealthCheckRequest::default()).await.unwrap();
    manager.store.remove_node(&node);
    let err = health
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("removed"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_worker_posing_as_a_manager_server() {
    // A worker's certificate lacks the `swarm-manager` name: a node that
    // dials "a manager" refuses it even though it chains to the root.
    let ca = Arc::new(
        ClusterCa::new("clusterone", RootCa::generate(SystemTime::now()).unwrap()).unwrap(),
    );
    let manager = Manager::start_with(ca.clone()).await;
    manager
        .credentials
        .replace(issue(&ca, &manager.node_id, NodeRole::Worker))
        .unwrap();
    let node = swarm_api::id::new_id();
    let tls = client(&ca.trust(), issue(&ca, &node, NodeRole::Worker));
    let outcome = match NodeChannelBuilder::new(tls).connect(&manager.addr()).await {
        Ok(channel) => classify(
            NodeCaClient::new(channel)
                .get_root_ca_certificate(GetRootCaCertificateRequest {})
                .await,
        ),
        Err(_) => Refused,
    };
    assert_eq!(outcome, Refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_applies_to_open_connections_on_the_injected_clock() {
    let clock = ManualClock::new(SystemTime::now());
    let ca = Arc::new(
        ClusterCa::with_clock(
            "clusterone",
            RootCa::generate(SystemTime::now()).unwrap(),
            Arc::new(clock.clone()),
        )
        .unwrap(),
    );
    ca.set_validity(swarm_pki::NodeCertValidity::new(Duration::from_secs(3600)).unwrap());
    let manager = Manager::start_with_clock(ca.clone(), Arc::new(clock.clone())).await;
    let node = swarm_api::id::new_id();
    manager.store.add_node(&node, NodeRole::Worker);
    let tls = client(&ca.trust(), issue(&ca, &node, NodeRole::Worker));
    let channel = NodeChannelBuilder::new(tls)
        .connect(&manager.addr())
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    // One second before the end of validity: accepted.
    clock.advance(Duration::from_secs(3599));
    health.check(HealthCheckRequest::default()).await.unwrap();
    // Two seconds later the same connection is refused.
    clock.advance(Duration::from_secs(2));
    let err = health
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("expired"), "{err:?}");
}
