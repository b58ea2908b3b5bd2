//! Promotion and demotion of a running `swarmd` node: a worker promoted
//! with `swarmctl node promote` starts its manager, joins raft and serves
//! the control API; demoted again, it stops the manager and forgets its
//! raft state. Its task keeps running through both.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use swarm_api::v1::{NodeRole, Reachability};
use swarm_examples::local::query::{self, Api};
use swarm_examples::local::{Binaries, ClusterOptions, LocalCluster, Role};

/// The nodes' addresses (other tests use other 127.x.y networks).
const NET: &str = "127.0.12";
/// Generous limit for each step (promotion takes a renewal and a raft join).
const LIMIT: Duration = Duration::from_secs(60);

fn cluster() -> LocalCluster {
    let bins = Binaries {
        swarmd: env!("CARGO_BIN_EXE_swarmd").into(),
        swarmctl: env!("CARGO_BIN_EXE_swarmctl").into(),
    };
    LocalCluster::new(bins, ClusterOptions::for_test(NET, "roles").unwrap()).unwrap()
}

/// The id of the one running task of `service` on `node`.
async fn running_task_on(api: &Api, service: &str, node: &str) -> Option<String> {
    let nodes = api.nodes().await.ok()?;
    let node_id = nodes
        .iter()
        .find(|n| query::hostname(n) == node)?
        .id
        .clone();
    let tasks = api.tasks(service).await.ok()?;
    let mut running = tasks.iter().filter(|t| query::is_running(t));
    let t = running.next()?;
    (running.next().is_none() && t.node_id == node_id).then(|| t.id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_worker_runs_a_manager_and_a_demoted_one_stops_it() {
    let mut c = cluster();
    c.init("m1", &format!("{NET}.1"), &["--availability", "drain"])
        .await
        .unwrap();
    c.join("w1", &format!("{NET}.2"), Role::Worker, &[])
        .await
        .unwrap();
    let w1_state = c.node("w1").unwrap().state_dir.clone();
    let w1_socket = c.node("w1").unwrap().socket();
    c.ctl(&[
        "service",
        "create",
        "--name",
        "idle",
        "--replicas",
        "1",
        "--detach",
        "busybox",
        "sleep",
        "3600",
    ])
    .unwrap();
    let task = c
        .wait_for("the task running on w1", LIMIT, |api| async move {
            Ok(running_task_on(&api, "idle", "w1").await)
        })
        .await
        .unwrap();
    assert!(!w1_state.join("manager.json").exists());

    // Promote: the certificate turns to manager, swarmd starts the manager,
    // which joins raft and answers on its own control socket.
    c.ctl(&["node", "promote", "w1"]).unwrap();
    c.wait_for("w1 a reachable manager", LIMIT, |api| async move {
        let n = api.node_by_hostname("w1").await?;
        Ok(n.filter(|n| {
            n.role() == NodeRole::Manager
                && n.manager_status
                    .as_ref()
                    .is_some_and(|m| m.reachability() == Reachability::Reachable)
        }))
    })
    .await
    .unwrap();
    assert!(w1_state.join("manager.json").is_file());
    let own = c
        .wait_for("w1's control socket", LIMIT, |_| {
            let socket = w1_socket.clone();
            async move {
                if !socket.exists() {
                    return Ok(None);
                }
                let api = Api::connect(&socket).await?;
                let managers = api
                    .nodes()
                    .await?
                    .iter()
                    .filter(|n| n.role() == NodeRole::Manager)
                    .count();
                Ok(Some(managers))
            }
        })
        .await
        .unwrap();
    assert_eq!(own, 2, "w1's own control API sees both managers");
    let after_promotion = c
        .wait_for("the task still on w1", LIMIT, |api| async move {
            Ok(running_task_on(&api, "idle", "w1").await)
        })
        .await
        .unwrap();
    assert_eq!(after_promotion, task, "the task ran through the promotion");

    // Demote: removed from raft, the manager stops, its state is removed;
    // the node stays a ready worker with its task.
    c.ctl(&["node", "demote", "w1"]).unwrap();
    c.wait_for("w1 a worker again", LIMIT, |api| async move {
        let n = api.node_by_hostname("w1").await?;
        Ok(n.filter(|n| n.role() == NodeRole::Worker && query::is_ready(n)))
    })
    .await
    .unwrap();
    let state = w1_state.clone();
    c.wait_for("w1's manager state removed", LIMIT, |_| {
        let gone = !state.join("manager.json").exists() && !state.join("raft").exists();
        async move { Ok(gone.then_some(())) }
    })
    .await
    .unwrap();
    let managers = c
        .api()
        .await
        .unwrap()
        .nodes()
        .await
        .unwrap()
        .iter()
        .filter(|n| n.role() == NodeRole::Manager)
        .count();
    assert_eq!(managers, 1);
    let after_demotion = c
        .wait_for("the task still on w1", LIMIT, |api| async move {
            Ok(running_task_on(&api, "idle", "w1").await)
        })
        .await
        .unwrap();
    assert_eq!(after_demotion, task, "the task ran through the demotion");
    assert!(
        c.node("w1").unwrap().is_running(),
        "swarmd on w1 kept running"
    );
}
