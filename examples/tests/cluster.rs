//! Multi-process end to end: six `swarmd` processes (3 managers, 3
//! workers) on their own loopback addresses, running real processes
//! through the demo's steps (deploy, job, kill -9 of a worker and of the
//! raft leader, rolling update, scale, drain, restarts), then a stack
//! deploy, an agent restart that must not duplicate tasks, and a join
//! with a wrong token.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeMap;
use std::time::Duration;

use swarm_examples::demo::{self, Demo, WORKERS};
use swarm_examples::local::query::{self, Api};
use swarm_examples::local::{
    Binaries, ClusterOptions, LocalCluster, LocalError, Role, live_task_processes,
};

/// The nodes' addresses: 127.0.9.1-7 (the demo uses 127.0.0.x).
const NET: &str = "127.0.9";

fn cluster() -> LocalCluster {
    let bins = Binaries {
        swarmd: env!("CARGO_BIN_EXE_swarmd").into(),
        swarmctl: env!("CARGO_BIN_EXE_swarmctl").into(),
    };
    LocalCluster::new(bins, ClusterOptions::for_test(NET, "cluster").unwrap()).unwrap()
}

/// Running tasks per node name, by the managers' account.
async fn running_per_node(api: &Api, service: &str) -> Result<BTreeMap<String, usize>, LocalError> {
    let tasks = api.tasks(service).await?;
    let nodes = api.nodes().await?;
    Ok(swarm_examples::local::running_by_node(&tasks, &nodes))
}

const STACK: &str = r#"
version: "3.8"
services:
  api:
    image: busybox
    command: ["sh", "-c", "while :; do sleep 1; done"]
    network_mode: host
    deploy:
      replicas: 2
  worker:
    image: busybox
    command: ["sh", "-c", "while :; do sleep 1; done"]
    network_mode: host
    deploy:
      replicas: 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_processes_converge_through_failures_without_duplicates() {
    let mut d = Demo::new(cluster(), NET, true);
    if let Err(e) = demo::run(&mut d).await {
        d.cluster.keep_files();
        panic!(
            "demo failed: {e}\nsteps:\n{}\nlogs kept in {}",
            d.summary(),
            d.cluster.root().display()
        );
    }
    assert_eq!(d.steps().len(), 8, "{}", d.summary());
    let c = &mut d.cluster;
    // Keep the logs if an assertion below fails; removed at the end.
    c.keep_files();
    let root = c.root().to_path_buf();

    // A stack: two services from a compose file, namespaced by the stack.
    let compose = c.root().join("stack.yml");
    std::fs::write(&compose, STACK).unwrap();
    c.ctl(&["stack", "deploy", "-c", compose.to_str().unwrap(), "shop"])
        .unwrap();
    for (svc, n) in [("shop_api", 2), ("shop_worker", 3)] {
        c.wait_for(
            &format!("{n} tasks of {svc}"),
            Duration::from_secs(60),
            |api| async move {
                let p = running_per_node(&api, svc).await?;
                Ok((p.values().sum::<usize>() == n).then_some(()))
            },
        )
        .await
        .unwrap();
    }
    let services = c.ctl(&["stack", "services", "shop"]).unwrap();
    assert!(
        services.contains("shop_api") && services.contains("shop_worker"),
        "{services}"
    );

    // kill -9 a worker that runs tasks and restart it: whatever the
    // managers decided meanwhile (kept or replaced), every task runs
    // exactly once, and the node runs exactly the processes of the tasks
    // the managers place on it.
    let busy = WORKERS[2].0;
    c.kill(busy).unwrap();
    c.restart(busy).await.unwrap();
    let services = ["web", "shop_api", "shop_worker"];
    let want = [(demo::WEB_REPLICAS + 3), 2, 3];
    let dirs: Vec<(String, std::path::PathBuf)> = WORKERS
        .iter()
        .map(|(name, _)| (name.to_string(), c.node(name).unwrap().state_dir.clone()))
        .collect();
    let settled = c
        .wait_for(
            "every task running once, each worker running exactly its tasks' processes",
            Duration::from_secs(90),
            |api| {
                let dirs = dirs.clone();
                async move {
                    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
                    for (svc, n) in services.iter().zip(want) {
                        let placed = running_per_node(&api, svc).await?;
                        if placed.values().sum::<usize>() != n {
                            return Ok(None);
                        }
                        for (node, k) in placed {
                            *per_node.entry(node).or_default() += k;
                        }
                    }
                    let live: BTreeMap<String, usize> = dirs
                        .iter()
                        .map(|(name, dir)| (name.clone(), live_task_processes(dir).len()))
                        .collect();
                    let placed: BTreeMap<String, usize> = dirs
                        .iter()
                        .map(|(name, _)| (name.clone(), per_node.get(name).copied().unwrap_or(0)))
                        .collect();
                    Ok((live == placed).then_some(live))
                }
            },
        )
        .await;
    assert!(settled.is_ok(), "{settled:?}");
    let api = c.api().await.unwrap();
    // Every running task has a distinct slot: no duplicates per service.
    for svc in services {
        let tasks = api.tasks(svc).await.unwrap();
        let mut slots: Vec<u64> = tasks
            .iter()
            .filter(|t| query::is_running(t))
            .map(|t| t.slot)
            .collect();
        let n = slots.len();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), n, "{svc}: two running tasks share a slot");
    }

    // A join with a well-formed token of the wrong secret is refused: the
    // process exits with an error that says why; the node is not listed.
    let good = c.join_token(Role::Worker).await.unwrap();
    let (prefix, _) = good.rsplit_once('-').unwrap();
    let bad = format!("{prefix}-{}", "0".repeat(25));
    let via = c.live_manager_addr().unwrap();
    c.join_with_token(
        "intruder",
        &format!("{NET}.7"),
        Role::Worker,
        &[],
        &bad,
        &via,
    )
    .unwrap();
    let code = c.wait_exit("intruder", Duration::from_secs(60)).unwrap();
    assert_ne!(code, Some(0), "a wrong token must fail the join");
    let log = c.node("intruder").unwrap().log_tail(5);
    assert!(log.to_lowercase().contains("token"), "{log}");
    let nodes = api.nodes().await.unwrap();
    assert!(nodes.iter().all(|n| query::hostname(n) != "intruder"));
    drop(d);
    std::fs::remove_dir_all(&root).unwrap();
}
