//! Root CA rotation under churn: nodes join and renew while the root
//! rotates; all end on the new root; afterwards the old root's
//! certificates are refused, on new and on open connections.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

mod common;

use std::time::SystemTime;

use swarm_api::health::HealthCheckRequest;
use swarm_api::health::health_client::HealthClient;
use swarm_pki::{
    ClientTls, ClusterTrust, JoinError, JoinOptions, NodeChannelBuilder, NodeTls, RootCa, join,
    renew,
};
use tonic::Code;

use common::Manager;

async fn check(tls: &ClientTls, addr: &str) -> Result<(), String> {
    let channel = NodeChannelBuilder::new(tls.clone())
        .connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_joining_and_renewing_during_a_rotation_all_end_on_the_new_root() {
    let manager = Manager::start("clusterone").await;
    let addr = manager.addr();
    let tokens = manager.store.tokens();
    let old_root = manager.ca.signing_root();
    let opts = JoinOptions::default();

    // Nodes of the old root; `stale` will never renew.
    let mut nodes = Vec::new();
    for i in 0..4 {
        let token = if i == 0 {
            &tokens.manager
        } else {
            &tokens.worker
        };
        nodes.push(NodeTls::new(join(&addr, token, &opts).await.unwrap()).unwrap());
    }
    let stale = NodeTls::new(join(&addr, &tokens.worker, &opts).await.unwrap()).unwrap();
    let stale_tls = stale.client_tls().unwrap();

    // Rotate: the manager re-issues itself first, then churn: every old
    // node renews while new nodes join (tokens still name the old root).
    let new_root = RootCa::generate(SystemTime::now()).unwrap();
    manager.ca.start_rotation(new_root.clone()).unwrap();
    manager.reissue_self();
    let mut tasks = Vec::new();
    for node in nodes.clone() {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let renewed = renew(&addr, &node, &JoinOptions::default()).await?;
            node.apply(renewed)?;
            Ok::<_, JoinError>(node)
        }));
    }
    for _ in 0..4 {
        let addr = addr.clone();
        let token = tokens.worker.clone();
        tasks.push(tokio::spawn(async move {
            let joined = join(&addr, &token, &JoinOptions::default()).await?;
            NodeTls::new(joined)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.unwrap().unwrap());
    }

    // During the rotation old and new certificates both work.
    assert_eq!(check(&stale_tls, &addr).await, Ok(()));
    for node in &all {
        let leaf = node.credentials.current().chain()[0].clone();
        assert!(
            !manager.ca.needs_reissue(&leaf),
            "issued under the old root"
        );
        assert_eq!(check(&node.client_tls().unwrap(), &addr).await, Ok(()));
    }
    assert!(
        manager
            .ca
            .needs_reissue(&stale.credentials.current().chain()[0])
    );

    // The stale node holds a connection open across the end of rotation.
    let open = NodeChannelBuilder::new(stale_tls.clone())
        .connect(&addr)
        .await
        .unwrap();
    let mut open = HealthClient::new(open);
    open.check(HealthCheckRequest::default()).await.unwrap();

    // Finish: only the new root; tokens re-bound to it.
    manager.ca.finish_rotation().unwrap();
    manager
        .store
        .set_tokens(tokens.with_root_digest(new_root.digest()));
    manager.reissue_self();

    // Every node ends on the new root alone.
    let new_only = ClusterTrust::new("clusterone", vec![new_root.certificate().clone()]).unwrap();
    for node in &all {
        let renewed = renew(&addr, node, &JoinOptions::default()).await.unwrap();
        assert_eq!(renewed.roots, vec![new_root.certificate().clone()]);
        node.apply(renewed).unwrap();
        new_only
            .verify_node_chain(node.credentials.current().chain(), SystemTime::now())
            .unwrap();
        assert_eq!(check(&node.client_tls().unwrap(), &addr).await, Ok(()));
    }

    // The old root's certificate is refused: at the handshake, and on the
    // next call of the connection opened before.
    assert!(check(&stale_tls, &addr).await.is_err());
    let err = open.check(HealthCheckRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(renew(&addr, &stale, &JoinOptions::default()).await.is_err());

    // A token naming the old root no longer joins; the re-bound one does,
    // and its node trusts only the new root.
    let err = join(&addr, &tokens.worker, &opts).await.unwrap_err();
    assert!(
        matches!(err, JoinError::RootDigestMismatch { .. }),
        "{err:?}"
    );
    let fresh = join(&addr, &manager.store.tokens().worker, &opts)
        .await
        .unwrap();
    assert_eq!(fresh.roots, vec![new_root.certificate().clone()]);
    assert_ne!(old_root.digest(), new_root.digest());
}
