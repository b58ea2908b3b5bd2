//! Joining and renewing against a real manager on loopback.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use swarm_api::health::HealthCheckRequest;
use swarm_api::health::health_client::HealthClient;
use swarm_api::v1::node_ca_client::NodeCaClient;
use swarm_api::v1::{
    IssueNodeCertificateRequest, NodeAvailability, NodeCertificateStatusRequest, NodeRole,
};
use swarm_pki::{
    ClientTls, CredentialStore, JoinError, JoinOptions, JoinToken, NodeChannelBuilder,
    NodeIdentity, NodeTls, RootCa, join, parse_bundle_pem, renew,
};
use tonic::Code;

use common::Manager;

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "swarm-pki-join-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn can_watch(tls: &ClientTls, addr: &str) -> Result<(), Code> {
    let channel = NodeChannelBuilder::new(tls.clone())
        .connect(addr)
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut stream = health
        .watch(HealthCheckRequest::default())
        .await
        .map_err(|s| s.code())?
        .into_inner();
    stream.message().await.map_err(|s| s.code())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_yield_their_role_and_the_node_is_stored_on_disk() {
    let manager = Manager::start("clusterone").await;
    let tokens = manager.store.tokens();
    let dir = TempDir::new();
    let options = JoinOptions {
        store: Some(CredentialStore::new(&dir.0)),
        availability: NodeAvailability::Drain,
        ..Default::default()
    };

    let worker = join(&manager.addr(), &tokens.worker, &options)
        .await
        .unwrap();
    let id = worker.credentials.identity().clone();
    assert_eq!(id.role, NodeRole::Worker);
    assert_eq!(id.cluster_id, "clusterone");
    assert_eq!(
        manager.store.availability(&id.node_id),
        Some(NodeAvailability::Drain)
    );
    assert_eq!(worker.roots, manager.ca.trusted_roots());

    // On disk: key 0600, the rest loads back to the same node.
    let key_mode = std::fs::metadata(dir.0.join(swarm_pki::KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let stored = CredentialStore::new(&dir.0).load().unwrap().unwrap();
    assert_eq!(stored.credentials.identity(), &id);
    assert_eq!(stored.roots, worker.roots);

    let manager_node = join(&manager.addr(), &tokens.manager, &JoinOptions::default())
        .await
        .unwrap();
    assert_eq!(manager_node.credentials.identity().role, NodeRole::Manager);

    // The roles work: only the manager may make manager calls.
    let worker_tls = NodeTls::new(worker).unwrap().client_tls().unwrap();
    let manager_tls = NodeTls::new(manager_node).unwrap().client_tls().unwrap();
    assert_eq!(
        can_watch(&worker_tls, &manager.addr()).await,
        Err(Code::PermissionDenied)
    );
    assert_eq!(can_watch(&manager_tls, &manager.addr()).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_token_never_yields_a_manager_certificate() {
    let manager = Manager::start("clusterone").await;
    let tokens = manager.store.tokens();
    // A CSR that asks to be a manager of the cluster, with a chosen id.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "clusterone");
    dn.push(DnType::OrganizationalUnitName, "swarm-manager");
    dn.push(DnType::CommonName, "aaaaaaaaaaaaaaaaaaaaaaaaa");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![rcgen::SanType::DnsName("swarm-manager".try_into().unwrap())];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();

    let anonymous = ClientTls::anonymous(manager.ca.trust()).unwrap();
    let channel = NodeChannelBuilder::new(anonymous)
        .connect(&manager.addr())
        .await
        .unwrap();
    let mut ca = NodeCaClient::new(channel);
    for _ in 0..3 {
        let resp = ca
            .issue_node_certificate(IssueNodeCertificateRequest {
                csr: csr.clone().into_bytes(),
                token: tokens.worker.to_string(),
                availability: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.role(), NodeRole::Worker);
        assert_ne!(resp.node_id, "aaaaaaaaaaaaaaaaaaaaaaaaa");
        let status = ca
            .node_certificate_status(NodeCertificateStatusRequest {
                node_id: resp.node_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let pem = status.certificate.unwrap().certificate;
        let leaf = parse_bundle_pem(&pem).unwrap().remove(0);
        let identity = NodeIdentity::from_der(&leaf).unwrap();
        assert_eq!(identity.role, NodeRole::Worker);
        assert_eq!(identity.node_id, resp.node_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_token_is_refused() {
    let manager = Manager::start("clusterone").await;
    let old = manager.store.tokens();
    let mut rotated = old.clone();
    rotated.rotate_worker(&mut rand::rng());
    manager.store.set_tokens(rotated.clone());

    let err = join(&manager.addr(), &old.worker, &JoinOptions::default())
        .await
        .unwrap_err();
    match err {
        JoinError::Rpc(status) => assert_eq!(status.code(), Code::PermissionDenied),
        other => panic!("unexpected {other:?}"),
    }
    // The manager token was not rotated and still works; the new worker
    // token works.
    join(&manager.addr(), &old.manager, &JoinOptions::default())
        .await
        .unwrap();
    let node = join(&manager.addr(), &rotated.worker, &JoinOptions::default())
        .await
        .unwrap();
    assert_eq!(node.credentials.identity().role, NodeRole::Worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_root_aborts_before_the_csr_is_sent() {
    let manager = Manager::start("clusterone").await;
    let tokens = manager.store.tokens();
    // Right secret, but the digest of a root the manager does not serve
    // (what a node sees when someone in the middle answers).
    let other_root = RootCa::generate(SystemTime::now()).unwrap();
    let token = tokens.worker.with_root_digest(other_root.digest());
    let before = manager.store.join_attempts();
    let err = join(&manager.addr(), &token, &JoinOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, JoinError::RootDigestMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(
        manager.store.join_attempts(),
        before,
        "a CSR reached the manager"
    );
    assert_eq!(manager.store.nodes().len(), 1, "only the manager itself");
    // A malformed token cannot even be built, and a well-formed one for
    // the right root joins.
    assert!(JoinToken::parse("SWMTKN-1-nope").is_err());
    join(&manager.addr(), &tokens.worker, &JoinOptions::default())
        .await
        .unwrap();
    assert_eq!(manager.store.join_attempts(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_and_promotion_swap_certificates_without_restarts() {
    let manager = Manager::start("clusterone").await;
    let tokens = manager.store.tokens();
    let addr = manager.addr();
    let node = NodeTls::new(
        join(&addr, &tokens.worker, &JoinOptions::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let before = node.credentials.current().identity().clone();
    // One client config for the node's whole life.
    let tls = node.client_tls().unwrap();
    assert_eq!(can_watch(&tls, &addr).await, Err(Code::PermissionDenied));

    // Plain renewal: same node, same role, new certificate.
    let renewed = renew(&addr, &node, &JoinOptions::default()).await.unwrap();
    node.apply(renewed).unwrap();
    let after = node.credentials.current().identity().clone();
    assert_eq!(after.node_id, before.node_id);
    assert_eq!(after.role, NodeRole::Worker);
    assert_ne!(after.serial, before.serial);

    // Promotion: the next certificate carries the manager OU, and the
    // same client config now passes manager calls.
    assert!(manager.store.set_role(&before.node_id, NodeRole::Manager));
    node.apply(renew(&addr, &node, &JoinOptions::default()).await.unwrap())
        .unwrap();
    assert_eq!(
        node.credentials.current().identity().role,
        NodeRole::Manager
    );
    assert_eq!(can_watch(&tls, &addr).await, Ok(()));

    // The server's own certificate is swapped under a running server.
    let served_serial = || async {
        let connector = tokio_rustls::TlsConnector::from(tls.rustls_config());
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("swarm-manager").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
        NodeIdentity::from_der(&leaf).unwrap().serial
    };
    let first = served_serial().await;
    assert_eq!(first, manager.credentials.current().identity().serial);
    manager.reissue_self();
    let second = served_serial().await;
    assert_ne!(first, second);
    assert_eq!(second, manager.credentials.current().identity().serial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_cannot_renew() {
    let manager = Manager::start("clusterone").await;
    let tokens = manager.store.tokens();
    let node = NodeTls::new(
        join(&manager.addr(), &tokens.worker, &JoinOptions::default())
            .await
            .unwrap(),
    )
    .unwrap();
    manager
        .store
        .remove_node(&node.credentials.current().identity().node_id);
    let err = renew(&manager.addr(), &node, &JoinOptions::default())
        .await
        .unwrap_err();
    // Refused at the handshake: surfaces as a failed call or connect.
    assert!(
        matches!(err, JoinError::Rpc(_) | JoinError::Connect { .. }),
        "{err:?}"
    );
}
