//! Overlay end-to-end on simulated hosts: an in-process manager and two
//! real agents whose VXLAN data planes live in two "host" namespaces on a
//! test underlay; a `server` service (a TCP echo server) on one, a client
//! task on the other that finds `server` through the embedded DNS at
//! 127.0.0.11, connects to its VIP and gets its line echoed back from the
//! other node.
//!
//! The underlay: a switch namespace with a bridge, and one namespace per
//! simulated host with `eth0` on it (198.18.0.1 and 198.18.0.2; the
//! addresses live in the test's own namespaces, so parallel runs do not
//! clash). Each agent's VXLAN driver treats its host namespace as the host
//! (`VxlanConfig::host_netns`): its VXLAN socket is bound there, to the
//! agent's data-path address. The agents themselves talk to the manager
//! over loopback in the root namespace. Task namespaces are made by the
//! agents' attachers; every namespace is named with the test's pid and
//! removed at the end (the test checks that removing the services removes
//! them, and sweeps them when it fails).
//!
//! Needs root, iproute2, VXLAN in the kernel, nftables, nsenter, dig and
//! python3 (the echo server and client); skips with a message otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use swarm_agent::exec::oci::OciExecutor;
use swarm_agent::network::NetworkAttacher;
use swarm_agent::{Agent, AgentHandle, Executor, ProcessExecutor};
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::*;
use swarm_manager::Manager;
use swarm_overlay::netns::NetnsGuard;
use swarm_overlay::vxlan::{VxlanConfig, VxlanDriver};

/// How long each wait may take: two agents, allocation, scheduling and a
/// server start.
const LIMIT: Duration = Duration::from_secs(60);

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).output().is_ok()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when the test can run here; says why not otherwise.
fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP overlay end-to-end: needs root (namespaces, netlink, nftables)");
        return false;
    }
    for (cmd, arg) in [
        ("ip", "-V"),
        ("nft", "-v"),
        ("nsenter", "--version"),
        ("dig", "-v"),
        ("python3", "-V"),
    ] {
        if !have(cmd, arg) {
            eprintln!("SKIP overlay end-to-end: needs {cmd} (bash scripts/setup)");
            return false;
        }
    }
    let probe = NetnsGuard::unique("swat-probe").unwrap();
    let ok = Command::new("ip")
        .args(["-n", &probe.name(), "link", "add", "vx0", "type", "vxlan"])
        .args(["id", "42", "dstport", "4789"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP overlay end-to-end: the kernel cannot make VXLAN devices");
    }
    ok
}

/// The underlay: a switch namespace and two hosts on 198.18.0.0/24.
struct Underlay {
    hosts: Vec<NetnsGuard>,
    _switch: NetnsGuard,
}

impl Underlay {
    fn new() -> Underlay {
        let switch = NetnsGuard::unique("swat-sw").unwrap();
        let sw = switch.name();
        ip(&["-n", &sw, "link", "add", "ul0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "ul0", "up"]);
        let mut hosts = Vec::new();
        for i in 0..2 {
            let h = NetnsGuard::unique("swat-h").unwrap();
            let port = format!("p{i}");
            ip(&[
                "-n",
                &sw,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &h.name(),
            ]);
            ip(&["-n", &sw, "link", "set", &port, "master", "ul0", "up"]);
            let addr = format!("198.18.0.{}/24", i + 1);
            ip(&["-n", &h.name(), "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &h.name(), "link", "set", "eth0", "up"]);
            ip(&["-n", &h.name(), "link", "set", "lo", "up"]);
            hosts.push(h);
        }
        Underlay {
            hosts,
            _switch: switch,
        }
    }
}

/// Which executor the agents run tasks with.
#[derive(Debug, Clone)]
enum Exec {
    /// Child processes entering the task's namespace.
    Process,
    /// runc containers from the busybox image in this image store.
    Runc(std::path::PathBuf),
}

/// A real agent named `name`, its overlay data plane in `host`.
async fn agent(
    m: &Manager,
    dir: &std::path::Path,
    name: &str,
    host: &NetnsGuard,
    addr: &str,
    exec: &Exec,
) -> AgentHandle {
    let tag = format!("swat{}{name}", std::process::id());
    let vxlan = VxlanConfig::builder(addr.parse().unwrap())
        .host_netns(host.path())
        .prefix(format!("{tag}ov"))
        .build()
        .unwrap();
    let driver = VxlanDriver::new(vxlan).await.unwrap();
    let attacher = Arc::new(
        NetworkAttacher::builder(Arc::new(driver))
            .data_path_addr(addr.parse().unwrap())
            .prefix(format!("{tag}t"))
            .upstreams(Vec::new())
            .build()
            .unwrap(),
    );
    let state = dir.join(name);
    let executor: Arc<dyn Executor> = match exec {
        Exec::Process => {
            Arc::new(ProcessExecutor::new(state.join("tasks")).networking(attacher.clone()))
        }
        Exec::Runc(images) => Arc::new(
            OciExecutor::builder(state.join("tasks"))
                .images(images)
                .networking(attacher.clone())
                .build()
                .unwrap(),
        ),
    };
    Agent::builder(&state)
        .manager(m.addr())
        .join_token(m.join_tokens().unwrap().worker.to_string())
        .hostname(name)
        .data_path_addr(addr)
        .executor(executor)
        .networking(attacher)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

/// A one-replica service on `node`, on `overlay1`, running `script` with
/// bash (process executor) or busybox sh (runc).
fn service(name: &str, node: &str, script: &str, exec: &Exec) -> ServiceSpec {
    let (image, shell) = match exec {
        Exec::Process => ("", "/bin/bash"),
        Exec::Runc(_) => ("busybox", "sh"),
    };
    ServiceSpec {
        annotations: Some(Annotations {
            name: name.into(),
            ..Default::default()
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: image.into(),
                command: vec![shell.into(), "-c".into(), script.into()],
                stop_grace_period: Some(swarm_api::v1::Duration::from_secs(1)),
                ..Default::default()
            }),
            networks: vec![NetworkAttachmentConfig {
                target: "overlay1".into(),
                ..Default::default()
            }],
            placement: Some(Placement {
                constraints: vec![format!("node.hostname=={node}")],
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedService {
            replicas: 1,
        })),
        ..Default::default()
    }
}

const ECHO_SERVER: &str = r#"exec python3 -c '
import socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 8080), H).serve_forever()
'"#;

/// Resolves `server` through the task's /etc/resolv.conf (which must name
/// the embedded DNS: the host's resolver knows no `server`), then sends a
/// line to port 8080 of the answer (the VIP) and writes what came back,
/// and the VIP, to `out`. Retries until it works (the server may not be
/// up yet).
fn client_script(out: &std::path::Path) -> String {
    let out = out.display();
    format!(
        r#"while true; do
  vip=$(dig +short +time=1 +tries=1 server | head -n1)
  if [ -n "$vip" ] && exec 3<>/dev/tcp/$vip/8080; then
    echo hello >&3
    if read -r -t 2 reply <&3 && [ -n "$reply" ]; then
      echo "$vip $reply" > {out}.tmp && mv {out}.tmp {out}
      exec sleep 1000
    fi
    exec 3<&-
  fi
  sleep 0.2
done"#
    )
}

/// The two tests share the process's namespace prefix: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_on_two_nodes_reach_a_service_by_name_through_its_vip() {
    init_logs();
    if !can_run() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let _sweep = cluster::NetnsSweeper(prefix());
    let dir = Dir::new("overlay");
    let underlay = Underlay::new();
    let m = cluster::fast_manager(&dir.0).await;
    let a = agent(
        &m,
        &dir.0,
        "neta",
        &underlay.hosts[0],
        "198.18.0.1",
        &Exec::Process,
    )
    .await;
    let b = agent(
        &m,
        &dir.0,
        "netb",
        &underlay.hosts[1],
        "198.18.0.2",
        &Exec::Process,
    )
    .await;
    a.connected().await;
    b.connected().await;
    let mut c = overlay_network(&m).await;
    // The client runs as `nobody`: it drops privileges only after entering
    // its namespace; it writes where anyone may.
    let shared = dir.0.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = shared.join("client.out");
    for (name, node, script, user) in [
        ("server", "neta", ECHO_SERVER.to_string(), ""),
        ("client", "netb", client_script(&out), "nobody"),
    ] {
        let mut spec = service(name, node, &script, &Exec::Process);
        if let Some(container) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
            container.user = user.into();
        }
        c.create_service(CreateServiceRequest { spec: Some(spec) })
            .await
            .unwrap();
    }
    // The client's line came back: DNS gave the VIP, the VIP led to the
    // server's task on the other node, over VXLAN.
    let got = cluster::eventually_tasks("the client's echo", &m, LIMIT, || async {
        std::fs::read_to_string(&out).ok()
    })
    .await;
    let server_task = m
        .store()
        .view()
        .all::<Task>()
        .iter()
        .find(|t| {
            t.service_annotations
                .as_ref()
                .is_some_and(|s| s.name == "server")
        })
        .map(|t| (**t).clone())
        .unwrap();
    let service = m
        .store()
        .view()
        .get::<Service>(&server_task.service_id)
        .unwrap();
    let vip = service.endpoint.as_ref().unwrap().virtual_ips[0]
        .addr
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut words = got.split_whitespace();
    assert_eq!(
        words.next(),
        Some(vip.as_str()),
        "DNS answered the VIP: {got}"
    );
    assert_eq!(words.next(), Some("hello"), "the line came back: {got}");
    let owner = std::fs::metadata(&out).unwrap().uid();
    assert_eq!(owner, 65534, "the client ran as nobody");
    assert!(
        vip.starts_with("10.199.0."),
        "the VIP is on the overlay: {vip}"
    );
    let client_on = a.worker().tasks().len();
    assert_eq!(client_on, 1, "only the server runs on neta");

    // Removing the services takes everything down on both nodes: task
    // namespaces, endpoints, and the overlay networks' namespaces.
    remove_services(&m, &mut c).await;

    a.shutdown().await;
    b.shutdown().await;
    drop(m);
}

/// Serves `hello-from-server` on port 8080 with busybox httpd.
const HTTP_SERVER: &str =
    "mkdir -p /www && echo hello-from-server > /www/index.html && exec httpd -f -p 8080 -h /www";

/// Resolves `server` with busybox nslookup, which asks the server of the
/// container's /etc/resolv.conf (the embedded DNS at 127.0.0.11), then
/// fetches the page from the answer (the VIP) with nc, until it comes;
/// exits 0. (Busybox wget, static glibc, crashes on this host.)
const HTTP_CLIENT: &str = r#"until vip=$(nslookup server 2>/dev/null | awk '/^Address: /{print $2}' | tail -n1) \
  && [ -n "$vip" ] \
  && printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "$vip" 8080 | grep -q hello-from-server; do
  sleep 0.2
done
echo "got the page from $vip""#;

/// Deletes the runc containers left under these roots, then unmounts
/// the root filesystems left under the test's directory (a failed run
/// leaves its agents' containers running otherwise).
struct RuncSweeper(Vec<std::path::PathBuf>, std::path::PathBuf);

impl Drop for RuncSweeper {
    fn drop(&mut self) {
        self.delete_containers();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let under = self.1.to_string_lossy().into_owned();
        for point in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
            if point.starts_with(&under) {
                let _ = Command::new("umount").args(["-l", point]).output();
            }
        }
    }
}

impl RuncSweeper {
    fn delete_containers(&self) {
        for root in &self.0 {
            let Ok(out) = Command::new(swarm_agent::exec::oci::DEFAULT_RUNC)
                .arg("--root")
                .arg(root)
                .args(["list", "-q"])
                .output()
            else {
                continue;
            };
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new(swarm_agent::exec::oci::DEFAULT_RUNC)
                    .arg("--root")
                    .arg(root)
                    .args(["delete", "--force", id])
                    .output();
            }
        }
    }
}

/// runc containers in the task namespaces: the client container finds
/// `server` by name through its resolv.conf (127.0.0.11) and fetches a
/// page from the server container on the other node through the VIP.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runc_containers_on_two_nodes_reach_a_service_by_name() {
    init_logs();
    if !can_run() {
        return;
    }
    for p in [swarm_agent::exec::oci::DEFAULT_RUNC, "/bin/busybox"] {
        if !std::path::Path::new(p).exists() {
            eprintln!("SKIP runc overlay end-to-end: {p} is missing (bash scripts/setup)");
            return;
        }
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let _sweep = cluster::NetnsSweeper(prefix());
    let dir = Dir::new("overlay-runc");
    let images = dir.0.join("images");
    swarm_agent::exec::oci::busybox_rootfs(
        &images
            .join("busybox")
            .join(swarm_agent::exec::oci::ROOTFS_DIR),
        std::path::Path::new("/bin/busybox"),
    )
    .unwrap();
    let exec = Exec::Runc(images);
    let runc_root = |node: &str| {
        dir.0
            .join(node)
            .join("tasks")
            .join(swarm_agent::exec::oci::RUNC_STATE_DIR)
    };
    let _containers = RuncSweeper(vec![runc_root("neta"), runc_root("netb")], dir.0.clone());
    let underlay = Underlay::new();
    let m = cluster::fast_manager(&dir.0).await;
    let a = agent(&m, &dir.0, "neta", &underlay.hosts[0], "198.18.0.1", &exec).await;
    let b = agent(&m, &dir.0, "netb", &underlay.hosts[1], "198.18.0.2", &exec).await;
    a.connected().await;
    b.connected().await;
    let mut c = overlay_network(&m).await;
    let mut client = service("client", "netb", HTTP_CLIENT, &exec);
    if let Some(t) = client.task.as_mut() {
        t.restart = Some(RestartPolicy {
            condition: RestartCondition::None.into(),
            ..Default::default()
        });
    }
    for spec in [service("server", "neta", HTTP_SERVER, &exec), client] {
        c.create_service(CreateServiceRequest { spec: Some(spec) })
            .await
            .unwrap();
    }
    // The client completes only once the page came back.
    cluster::eventually_tasks(
        "the client container to get the page",
        &m,
        LIMIT,
        || async {
            m.store()
                .view()
                .all::<Task>()
                .iter()
                .any(|t| {
                    t.service_annotations
                        .as_ref()
                        .is_some_and(|s| s.name == "client")
                        && t.state() == TaskState::Complete
                })
                .then_some(())
        },
    )
    .await;
    remove_services(&m, &mut c).await;
    for node in ["neta", "netb"] {
        let left = Command::new(swarm_agent::exec::oci::DEFAULT_RUNC)
            .arg("--root")
            .arg(runc_root(node))
            .args(["list", "-q"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&left.stdout).trim().is_empty(),
            "containers left on {node}: {left:?}"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
    drop(m);
}

/// Creates `overlay1` (10.199.0.0/24) and returns a control client.
async fn overlay_network(m: &Manager) -> ControlClient<tonic::transport::Channel> {
    let ch = swarm_manager::local::local_channel(m.control_socket().unwrap())
        .await
        .unwrap();
    let mut c = ControlClient::new(ch);
    c.create_network(CreateNetworkRequest {
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: "overlay1".into(),
                ..Default::default()
            }),
            ipam: Some(IpamOptions {
                driver: None,
                configs: vec![IpamConfig {
                    subnet: "10.199.0.0/24".into(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    c
}

/// Removes every service and waits until nothing of this process's
/// namespaces is left.
async fn remove_services(m: &Manager, c: &mut ControlClient<tonic::transport::Channel>) {
    assert!(!leftovers().is_empty());
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
    cluster::eventually_tasks("the namespaces removed", m, LIMIT, || async {
        let left = leftovers();
        left.is_empty().then_some(())
    })
    .await;
}

/// Namespaces of this test process's agents (tasks' and networks').
fn leftovers() -> Vec<String> {
    cluster::netns_leftovers(&prefix())
}

/// The prefix of this process's namespace names.
fn prefix() -> String {
    format!("swat{}", std::process::id())
}
