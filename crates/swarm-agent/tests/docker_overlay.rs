//! Docker tasks on a swarm overlay network, end to end: an in-process
//! manager and one real agent running the Docker executor with a VXLAN
//! [`NetworkAttacher`]. A `server` service of two busybox httpd replicas
//! and a `client` task share an overlay network; the client resolves
//! `server` through its `/etc/resolv.conf` (the embedded DNS, no server
//! named) and fetches `http://server/` through the service's VIP with
//! busybox wget. Removing the services must leave no sandbox container,
//! no namespace name and no endpoint behind. A second test restarts the
//! agent's networking and executor under a running task: `recover`
//! attaches its namespace again (the DNS answers in it again).
//!
//! The node's data plane lives in a "host" namespace of the test's own
//! (`VxlanConfig::host_netns`, address 198.18.0.1 on a veth device), so
//! parallel runs do not clash; namespaces are named with the test's pid
//! and swept if the test fails.
//!
//! Needs root, a Docker engine on /var/run/docker.sock, Debian
//! busybox-static, iproute2, VXLAN in the kernel and nftables; skips with
//! a message otherwise.

#![cfg(feature = "docker")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;
mod docker_image;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder};
use common::*;
use futures::StreamExt;
use swarm_agent::exec::docker::{DEFAULT_SANDBOX_BINARY, DockerExecutor, labels};
use swarm_agent::network::NetworkAttacher;
use swarm_agent::{Agent, AgentHandle};
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::*;
use swarm_manager::Manager;
use swarm_overlay::driver::NetworkDriver;
use swarm_overlay::netns::NetnsGuard;
use swarm_overlay::vxlan::{VxlanConfig, VxlanDriver};

use docker_image::IMAGE;

/// How long each wait may take (agents, allocation, a container start).
const LIMIT: Duration = Duration::from_secs(45);

const HTTPD: &str =
    "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www";

/// Fetches `http://server/` with busybox wget (the name resolved with
/// the DNS server of /etc/resolv.conf: none is named), retrying while the
/// servers come up; prints the page and what `server` resolves to (busybox
/// nslookup, again from /etc/resolv.conf) and exits 0; exits 1 after about
/// 30 s.
///
/// (busybox `timeout` bounds each try: wget's own `-T` crashes Debian's
/// busybox-static 1.35.)
const CLIENT: &str = r#"i=0
while [ $i -lt 100 ]; do
  if page=$(timeout 5 wget -q -O - http://server/); then
    echo "page: $page"
    vip=$(nslookup server | awk '/^Name:/ { n = 1 } n && /^Address/ { print $2; exit }')
    echo "resolved: $vip"
    exit 0
  fi
  i=$((i+1))
  sleep 0.3
done
cat /etc/resolv.conf
nslookup server
exit 1"#;

fn ip(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when the test can run here; says why not otherwise.
fn can_run() -> bool {
    let skip = |why: &str| {
        eprintln!("SKIP docker overlay: {why}");
        false
    };
    if !nix::unistd::geteuid().is_root() {
        return skip("needs root (namespaces, netlink, nftables)");
    }
    if !std::path::Path::new(DEFAULT_SANDBOX_BINARY).is_file() {
        return skip("needs Debian busybox-static (bash scripts/setup)");
    }
    for (cmd, arg) in [("ip", "-V"), ("nft", "-v")] {
        if Command::new(cmd).arg(arg).output().is_err() {
            return skip(&format!("needs {cmd} (bash scripts/setup)"));
        }
    }
    let probe = NetnsGuard::unique("swdo-probe").unwrap();
    let ok = Command::new("ip")
        .args(["-n", &probe.name(), "link", "add", "vx0", "type", "vxlan"])
        .args(["id", "42", "dstport", "4789"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || skip("the kernel cannot make VXLAN devices")
}

/// The simulated host: a namespace with the data-path address.
fn host() -> NetnsGuard {
    let h = NetnsGuard::unique("swdo-h").unwrap();
    let n = h.name();
    ip(&n, &["link", "set", "lo", "up"]);
    // (No dummy device in this kernel: a veth pair does.)
    ip(
        &n,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ],
    );
    ip(&n, &["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    ip(&n, &["link", "set", "eth0p", "up"]);
    ip(&n, &["link", "set", "eth0", "up"]);
    h
}

/// The prefix of the names of one test's namespaces (tests run at once).
fn tag(test: &str) -> String {
    format!("swdo{}{test}", std::process::id())
}

/// The prefix of the end-to-end test's names.
fn e2e_tag() -> String {
    tag("s")
}

/// The agent: Docker executor, VXLAN attacher in `host`.
async fn agent(
    m: &Manager,
    dir: &std::path::Path,
    host: &NetnsGuard,
) -> (AgentHandle, Arc<VxlanDriver>) {
    let addr = "198.18.0.1";
    let vxlan = VxlanConfig::builder(addr.parse().unwrap())
        .host_netns(host.path())
        .prefix(format!("{}ov", e2e_tag()))
        .build()
        .unwrap();
    let driver = Arc::new(VxlanDriver::new(vxlan).await.unwrap());
    let attacher = Arc::new(
        NetworkAttacher::builder(driver.clone())
            .data_path_addr(addr.parse().unwrap())
            .prefix(format!("{}t", e2e_tag()))
            .upstreams(Vec::new())
            .build()
            .unwrap(),
    );
    let state = dir.join("node");
    let executor = DockerExecutor::builder()
        .root(state.join("tasks"))
        .networking(attacher.clone())
        .connect()
        .await
        .unwrap();
    let handle = Agent::builder(&state)
        .manager(m.addr())
        .join_token(m.join_tokens().unwrap().worker.to_string())
        .hostname("dockernode")
        .data_path_addr(addr)
        .executor(Arc::new(executor))
        .networking(attacher)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    (handle, driver)
}

fn service(name: &str, replicas: u64, script: &str, restart: RestartCondition) -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations {
            name: name.into(),
            ..Default::default()
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: IMAGE.into(),
                command: vec!["/bin/sh".into(), "-c".into(), script.into()],
                stop_grace_period: Some(swarm_api::v1::Duration::from_secs(1)),
                ..Default::default()
            }),
            networks: vec![NetworkAttachmentConfig {
                target: "dockoverlay".into(),
                ..Default::default()
            }],
            restart: Some(RestartPolicy {
                condition: restart.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedService {
            replicas,
        })),
        ..Default::default()
    }
}

fn tasks_of(m: &Manager, service: &str) -> Vec<Task> {
    m.store()
        .view()
        .all::<Task>()
        .iter()
        .filter(|t| {
            t.service_annotations
                .as_ref()
                .is_some_and(|s| s.name == service)
        })
        .map(|t| (**t).clone())
        .collect()
}

/// The engine's containers of `task_id`: (id, is a sandbox).
async fn containers(docker: &Docker, task_id: &str) -> Vec<(String, bool)> {
    let filter = HashMap::from([("label", vec![format!("{}={task_id}", labels::TASK_ID)])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filter)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let sandbox = c
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::ROLE))
                .is_some_and(|r| r == labels::SANDBOX_ROLE);
            (c.id.unwrap_or_default(), sandbox)
        })
        .collect()
}

async fn logs(docker: &Docker, id: &str) -> String {
    let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
    let mut out = String::new();
    let mut stream = docker.logs(id, Some(options));
    while let Some(item) = stream.next().await {
        out.push_str(&item.unwrap().to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_tasks_reach_a_service_by_name_through_its_vip() {
    init_logs();
    if !can_run() {
        return;
    }
    let dir = Dir::new("docker-overlay");
    // Skips (and says so) without an engine; imports the test image.
    let Some(probe) = docker_image::executor(&dir.0.join("probe")).await else {
        return;
    };
    let docker = probe.client().clone();
    let _sweep = cluster::NetnsSweeper(e2e_tag());
    let host = host();
    let m = cluster::fast_manager(&dir.0).await;
    let (a, driver) = agent(&m, &dir.0, &host).await;
    a.connected().await;

    let ch = swarm_manager::local::local_channel(m.control_socket().unwrap())
        .await
        .unwrap();
    let mut c = ControlClient::new(ch);
    c.create_network(CreateNetworkRequest {
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: "dockoverlay".into(),
                ..Default::default()
            }),
            ipam: Some(IpamOptions {
                driver: None,
                configs: vec![IpamConfig {
                    subnet: "10.198.0.0/24".into(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    for spec in [
        service("server", 2, HTTPD, RestartCondition::Any),
        service("client", 1, CLIENT, RestartCondition::None),
    ] {
        c.create_service(CreateServiceRequest { spec: Some(spec) })
            .await
            .unwrap();
    }

    // The client ends ...
    let client = cluster::eventually_tasks("the client's task to end", &m, LIMIT, || async {
        tasks_of(&m, "client").into_iter().find(|t| {
            t.status
                .as_ref()
                .is_some_and(|s| s.state() >= TaskState::Complete)
        })
    })
    .await;
    let ours: Vec<(String, bool)> = containers(&docker, &client.id).await;
    assert_eq!(
        ours.iter().filter(|(_, sandbox)| *sandbox).count(),
        1,
        "one sandbox: {ours:?}"
    );
    let (task_container, _) = ours.iter().find(|(_, sandbox)| !sandbox).unwrap();
    let out = logs(&docker, task_container).await;
    // ... with exit 0, having fetched a server's page ...
    assert_eq!(
        client.status.as_ref().map(|s| s.state()),
        Some(TaskState::Complete),
        "client output: {out}"
    );
    assert!(out.contains("page: hello-"), "client output: {out}");
    // ... from `server` as the DNS answers it: the service's VIP.
    let server = m
        .store()
        .view()
        .get::<Service>(&tasks_of(&m, "server")[0].service_id)
        .unwrap();
    let vip = server.endpoint.as_ref().unwrap().virtual_ips[0]
        .addr
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        vip.starts_with("10.198.0."),
        "the VIP is on the overlay: {vip}"
    );
    assert!(
        out.contains(&format!("resolved: {vip}\n")),
        "`server` resolves to the VIP {vip}: {out}"
    );
    // The server tasks run in sandboxes too, on the overlay.
    let servers = tasks_of(&m, "server");
    assert_eq!(servers.len(), 2);
    for t in &servers {
        let cs = containers(&docker, &t.id).await;
        assert_eq!(cs.len(), 2, "a task container and its sandbox: {cs:?}");
    }
    let state = driver.state().await.unwrap();
    assert_eq!(state.networks.len(), 1);
    assert_eq!(state.networks[0].endpoints.len(), 3, "{state:?}");
    assert!(!cluster::netns_leftovers(&e2e_tag()).is_empty());

    // Removing the services removes every container (sandboxes too), the
    // namespace names and the endpoints.
    let all: Vec<String> = tasks_of(&m, "server")
        .into_iter()
        .chain(tasks_of(&m, "client"))
        .map(|t| t.id)
        .collect();
    let services: Vec<String> = m
        .store()
        .view()
        .all::<Service>()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    for id in services {
        c.remove_service(RemoveServiceRequest { service_id: id })
            .await
            .unwrap();
    }
    cluster::eventually_tasks(
        "the containers, names and endpoints removed",
        &m,
        LIMIT,
        || async {
            for id in &all {
                if !containers(&docker, id).await.is_empty() {
                    return None;
                }
            }
            let endpoints: usize = driver
                .state()
                .await
                .unwrap()
                .networks
                .iter()
                .map(|n| n.endpoints.len())
                .sum();
            (cluster::netns_leftovers(&e2e_tag()).is_empty() && endpoints == 0).then_some(())
        },
    )
    .await;

    a.shutdown().await;
    drop(m);
}

/// An agent restart: a running task's namespace is attached again (the
/// DNS answers in it again), and `remove` then leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_agent_attaches_a_running_task_again() {
    use swarm_agent::{Dependencies, Executor, Recovered};
    use swarm_overlay::allocator::NetworkAllocator;
    use swarm_overlay::ipam::IpamConfig as Ipam;

    init_logs();
    if !can_run() {
        return;
    }
    let dir = Dir::new("docker-overlay-recover");
    let Some(probe) = docker_image::executor(&dir.0.join("probe")).await else {
        return;
    };
    let docker = probe.client().clone();
    let tag = tag("r");
    let _sweep = cluster::NetnsSweeper(tag.clone());
    let host = host();

    let mut alloc = NetworkAllocator::new(Ipam::default());
    let mut net = Network {
        id: "recovernet".into(),
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: "back".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    alloc.allocate_network(&mut net).unwrap();
    let mut task = Task {
        id: swarm_api::id::new_id(),
        service_id: "s1".into(),
        networks: vec![NetworkAttachment {
            network: Some(net.clone()),
            ..Default::default()
        }],
        spec: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: IMAGE.into(),
                command: vec!["sleep".into(), "1000".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    alloc.allocate_task(&mut task).unwrap();
    let view = NetworkView {
        network: Some(net.clone()),
        services: vec![ServiceEndpoint {
            service_id: "s1".into(),
            name: "web".into(),
            vip: "10.0.0.250/24".into(),
            ..Default::default()
        }],
        tasks: vec![TaskEndpoint {
            task_id: task.id.clone(),
            service_id: "s1".into(),
            name: format!("web.1.{}", task.id),
            addresses: task.networks[0].addresses.clone(),
            node_addr: "198.18.0.1".into(),
            serving: true,
            ..Default::default()
        }],
    };
    // One agent's networking and executor (made again after a restart).
    let node = |dir: std::path::PathBuf| {
        let (tag, host, view) = (tag.clone(), host.path().to_path_buf(), view.clone());
        async move {
            let vxlan = VxlanConfig::builder("198.18.0.1".parse().unwrap())
                .host_netns(host)
                .prefix(format!("{tag}ov"))
                .build()
                .unwrap();
            let driver = Arc::new(VxlanDriver::new(vxlan).await.unwrap());
            let attacher = Arc::new(
                NetworkAttacher::builder(driver.clone())
                    .data_path_addr("198.18.0.1".parse().unwrap())
                    .prefix(format!("{tag}t"))
                    .upstreams(Vec::new())
                    .build()
                    .unwrap(),
            );
            attacher.set_view(&view).await.unwrap();
            let exec = DockerExecutor::builder()
                .root(dir)
                .networking(attacher)
                .connect()
                .await
                .unwrap();
            (exec, driver)
        }
    };
    let resolves_web = |id: String| {
        let out = Command::new("docker")
            .args(["exec", &id, "nslookup", "web"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("Address: 10.0.0.250")
    };

    let (exec, driver) = node(dir.0.join("tasks")).await;
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    c.prepare().await.unwrap();
    c.start().await.unwrap();
    let id = c.container_status().container_id;
    eventually("the DNS answering in the task", || async {
        resolves_web(id.clone()).then_some(())
    })
    .await;

    // The agent goes away (its DNS with it); the containers stay.
    drop((c, exec, driver));
    eventually("the DNS gone with the agent", || async {
        (!resolves_web(id.clone())).then_some(())
    })
    .await;

    let (exec, driver) = node(dir.0.join("tasks")).await;
    let c = exec.controller(&task, &Dependencies::default()).unwrap();
    assert_eq!(c.recover().await.unwrap(), Recovered::Running);
    assert!(resolves_web(id.clone()), "the DNS answers again");
    assert_eq!(c.container_status().container_id, id);
    assert_eq!(containers(&docker, &task.id).await.len(), 2);

    c.remove().await.unwrap();
    assert!(
        containers(&docker, &task.id).await.is_empty(),
        "no sandbox left"
    );
    assert!(
        cluster::netns_leftovers(&tag).is_empty(),
        "no namespace name left"
    );
    assert!(
        driver.state().await.unwrap().networks.is_empty(),
        "no endpoint left"
    );
}
