//! The demo's steps: build the cluster, deploy, break things, watch the
//! cluster repair itself.

use swarm_api::v1::{Reachability, TaskState, UpdateState};

use super::{Demo, STEP_LIMIT};
use crate::local::query::{self, Api};
use crate::local::{LocalError, Placement, Role, running_by_node};

/// Replicas of the demo's `web` service.
pub const WEB_REPLICAS: usize = 6;

/// Replicas after the demo scales `web` up on the new leader.
const SCALED: usize = 9;

/// The managers, with the last octet of their loopback address.
const MANAGERS: [(&str, u8); 3] = [("manager-1", 1), ("manager-2", 2), ("manager-3", 3)];

/// The workers.
pub const WORKERS: [(&str, u8); 3] = [("worker-1", 4), ("worker-2", 5), ("worker-3", 6)];

/// A long-running task: a process that does a little work every second
/// and says so.
const WEB_COMMAND: &str = "while :; do echo \"$(date +%T) task $SWARM_TASK_ID serving (version ${VERSION:-1})\"; sleep 1; done";

/// A batch task: hash 20 MB of random data.
const JOB_COMMAND: &str = "head -c 20000000 /dev/urandom | sha256sum";

fn describe(p: &Placement) -> String {
    p.iter()
        .map(|(node, n)| format!("{node}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Running tasks of `service` when there are exactly `want`, none on the
/// `avoid` nodes, and (with `version`) all at the service's current spec
/// version with its update completed.
async fn converged(
    api: &Api,
    service: &str,
    want: usize,
    avoid: &[&str],
    version: bool,
) -> Result<Option<Placement>, LocalError> {
    let tasks = api.tasks(service).await?;
    let nodes = api.nodes().await?;
    let placement = running_by_node(&tasks, &nodes);
    let running: usize = placement.values().sum();
    if running != want || avoid.iter().any(|a| placement.contains_key(*a)) {
        return Ok(None);
    }
    if version {
        let Some(svc) = api.service(service).await? else {
            return Ok(None);
        };
        let done = svc
            .update_status
            .as_ref()
            .is_some_and(|u| u.state() == UpdateState::Completed);
        let current = tasks
            .iter()
            .filter(|t| query::is_running(t))
            .all(|t| t.spec_version == svc.spec_version);
        if !done || !current {
            return Ok(None);
        }
    }
    Ok(Some(placement))
}

/// Waits until `service` has converged as [`converged`] describes.
async fn wait_converged(
    demo: &mut Demo,
    service: &str,
    want: usize,
    avoid: &[&str],
    version: bool,
) -> Result<Placement, LocalError> {
    let what = format!("{want} running tasks of {service}");
    let service = service.to_string();
    let avoid: Vec<String> = avoid.iter().map(ToString::to_string).collect();
    demo.cluster
        .wait_for(&what, STEP_LIMIT, |api| {
            let service = service.clone();
            let avoid = avoid.clone();
            async move {
                let avoid: Vec<&str> = avoid.iter().map(String::as_str).collect();
                converged(&api, &service, want, &avoid, version).await
            }
        })
        .await
}

/// Builds the cluster: 3 managers (drained, so tasks go to workers) and
/// 3 workers, with a 1 s heartbeat so failures show quickly.
async fn build(demo: &mut Demo) -> Result<(), LocalError> {
    let net = demo.network.clone();
    let t = demo.begin(&format!("Start 3 managers and 3 workers on {net}.1-6"));
    let (first, host) = MANAGERS[0];
    demo.cluster
        .init(
            first,
            &format!("{net}.{host}"),
            &["--availability", "drain"],
        )
        .await?;
    demo.ctl(&["cluster", "update", "--dispatcher-heartbeat", "1s"])?;
    for (name, host) in &MANAGERS[1..] {
        let ip = format!("{net}.{host}");
        demo.cluster
            .join(name, &ip, Role::Manager, &["--availability", "drain"])
            .await?;
    }
    for (i, (name, host)) in WORKERS.iter().enumerate() {
        let ip = format!("{net}.{host}");
        let zone = format!("zone=z{}", i + 1);
        demo.cluster
            .join(name, &ip, Role::Worker, &["--label", &zone])
            .await?;
    }
    demo.ctl(&["node", "ls"])?;
    let nodes = demo.cluster.api().await?.nodes().await?;
    let ready = nodes.iter().filter(|n| query::is_ready(n)).count();
    demo.end("cluster up", t, format!("{ready} nodes ready, 3 managers"));
    Ok(())
}

/// Creates the web service and waits for its tasks to run on the workers.
async fn deploy(demo: &mut Demo) -> Result<(), LocalError> {
    let t = demo.begin(&format!(
        "Deploy `web`: {WEB_REPLICAS} replicas of a shell loop"
    ));
    let replicas = WEB_REPLICAS.to_string();
    demo.ctl(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        &replicas,
        "--detach",
        "busybox",
        "sh",
        "-c",
        WEB_COMMAND,
    ])?;
    let placement = wait_converged(demo, "web", WEB_REPLICAS, &[], false).await?;
    demo.ctl(&["service", "ps", "web"])?;
    demo.end(
        "deploy web",
        t,
        format!(
            "{WEB_REPLICAS}/{WEB_REPLICAS} running ({})",
            describe(&placement)
        ),
    );
    Ok(())
}

/// Runs a replicated job to completion.
async fn job(demo: &mut Demo) -> Result<(), LocalError> {
    let t = demo.begin("Run a job: 3 tasks each hash 20 MB of random data");
    demo.ctl(&[
        "service",
        "create",
        "--name",
        "checksum",
        "--mode",
        "replicated-job",
        "--replicas",
        "3",
        "--detach",
        "busybox",
        "sh",
        "-c",
        JOB_COMMAND,
    ])?;
    let done = demo
        .cluster
        .wait_for("3 completed checksum tasks", STEP_LIMIT, |api| async move {
            let tasks = api.tasks("checksum").await?;
            let complete = tasks
                .iter()
                .filter(|t| t.status.as_ref().map(|s| s.state()) == Some(TaskState::Complete))
                .count();
            Ok((complete >= 3).then_some(complete))
        })
        .await?;
    demo.end("replicated job", t, format!("{done}/3 tasks complete"));
    Ok(())
}

/// Kills a worker; its tasks move to the others.
async fn kill_worker(demo: &mut Demo) -> Result<(), LocalError> {
    let victim = WORKERS[0].0;
    let t = demo.begin(&format!("kill -9 {victim}: its tasks move to the others"));
    demo.cluster.kill(victim)?;
    let placement = wait_converged(demo, "web", WEB_REPLICAS, &[victim], false).await?;
    demo.ctl(&["node", "ls"])?;
    demo.end(
        "worker killed",
        t,
        format!(
            "rescheduled: {WEB_REPLICAS} running ({})",
            describe(&placement)
        ),
    );
    Ok(())
}

/// A rolling update, two tasks at a time.
async fn rolling_update(demo: &mut Demo) -> Result<(), LocalError> {
    let t = demo.begin("Rolling update of web to VERSION=2, 2 tasks at a time");
    demo.ctl(&[
        "service",
        "update",
        "web",
        "--env-add",
        "VERSION=2",
        "--update-parallelism",
        "2",
        "--update-delay",
        "1s",
        "--detach",
    ])?;
    let placement = wait_converged(demo, "web", WEB_REPLICAS, &[WORKERS[0].0], true).await?;
    demo.end(
        "rolling update",
        t,
        format!(
            "all {WEB_REPLICAS} at the new spec ({})",
            describe(&placement)
        ),
    );
    Ok(())
}

/// Kills the raft leader; another manager takes over and serves writes.
async fn kill_leader(demo: &mut Demo) -> Result<String, LocalError> {
    let leader = demo
        .cluster
        .api()
        .await?
        .leader()
        .await?
        .ok_or(LocalError::NoManager)?;
    let t = demo.begin(&format!(
        "kill -9 the raft leader ({leader}), then scale web to {SCALED} on the new one"
    ));
    demo.cluster.kill(&leader)?;
    let old = leader.clone();
    let new = demo
        .cluster
        .wait_for("a new leader", STEP_LIMIT, |api| {
            let old = old.clone();
            async move { Ok(api.leader().await?.filter(|l| *l != old)) }
        })
        .await?;
    demo.ctl(&["service", "scale", &format!("web={SCALED}"), "--detach"])?;
    let placement = wait_converged(demo, "web", SCALED, &[WORKERS[0].0], false).await?;
    demo.end(
        "leader killed",
        t,
        format!(
            "{new} leads; scaled to {SCALED} running ({})",
            describe(&placement)
        ),
    );
    Ok(leader)
}

/// Drains a worker: its tasks move to the remaining one.
async fn drain(demo: &mut Demo) -> Result<(), LocalError> {
    let (drained, _) = WORKERS[1];
    let t = demo.begin(&format!("Drain {drained}"));
    demo.ctl(&["node", "update", "--availability", "drain", drained])?;
    let placement = wait_converged(demo, "web", SCALED, &[WORKERS[0].0, drained], false).await?;
    demo.end(
        "drain",
        t,
        format!("{SCALED} running ({})", describe(&placement)),
    );
    Ok(())
}

/// Restarts the killed nodes from their state; they rejoin.
async fn recover(demo: &mut Demo, old_leader: &str) -> Result<(), LocalError> {
    let worker = WORKERS[0].0;
    let t = demo.begin(&format!(
        "Restart {worker} and {old_leader} from their state, activate {}",
        WORKERS[1].0
    ));
    demo.cluster.restart(worker).await?;
    demo.cluster.restart(old_leader).await?;
    demo.ctl(&["node", "update", "--availability", "active", WORKERS[1].0])?;
    let managers = demo
        .cluster
        .wait_for("3 reachable managers", STEP_LIMIT, |api| async move {
            let nodes = api.nodes().await?;
            let reachable = nodes
                .iter()
                .filter(|n| {
                    query::is_ready(n)
                        && n.manager_status
                            .as_ref()
                            .is_some_and(|m| m.reachability() == Reachability::Reachable)
                })
                .count();
            Ok((reachable == 3).then_some(reachable))
        })
        .await?;
    // The restarted worker's old tasks were replaced: none may run again.
    let placement = wait_converged(demo, "web", SCALED, &[], false).await?;
    demo.ctl(&["node", "ls"])?;
    demo.end(
        "recovery",
        t,
        format!(
            "{managers} managers ready; still exactly {SCALED} running ({})",
            describe(&placement)
        ),
    );
    Ok(())
}

/// Runs the whole demo. Each step checks its outcome; the first that does
/// not converge within [`STEP_LIMIT`] fails the demo with the reason.
pub async fn run(demo: &mut Demo) -> Result<(), LocalError> {
    build(demo).await?;
    deploy(demo).await?;
    job(demo).await?;
    kill_worker(demo).await?;
    rolling_update(demo).await?;
    let old_leader = kill_leader(demo).await?;
    drain(demo).await?;
    recover(demo, &old_leader).await?;
    Ok(())
}
