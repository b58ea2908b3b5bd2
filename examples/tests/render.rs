//! Snapshot tests of `swarmctl`'s tables and JSON, on fixed objects.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;
use swarm_examples::ctl::render::format::json;
use swarm_examples::ctl::render::networks::network_table;
use swarm_examples::ctl::render::nodes::node_table;
use swarm_examples::ctl::render::secrets::secret_table;
use swarm_examples::ctl::render::services::{ReplicaCounts, ServiceRow, service_table};
use swarm_examples::ctl::render::tasks::{Names, task_table};

const NOW: u64 = 1_800_000_000;

fn at(secs_ago: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW - secs_ago))
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

fn service(id: &str, name: &str, mode: Mode, ports: Vec<PortConfig>) -> Service {
    Service {
        id: id.into(),
        spec_version: 1,
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox:latest".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(mode),
            endpoint: Some(EndpointSpec {
                ports,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(
    id: &str,
    service: &Service,
    slot: u64,
    state: TaskState,
    desired: TaskState,
    age: u64,
) -> Task {
    let mut t = Task {
        id: id.into(),
        service_id: service.id.clone(),
        slot,
        spec_version: service.spec_version,
        node_id: "node1".into(),
        spec: service.spec.as_ref().and_then(|s| s.task.clone()),
        service_annotations: service.spec.as_ref().and_then(|s| s.annotations.clone()),
        meta: Some(Meta {
            version: 1,
            created_at: Some(at(age)),
            updated_at: Some(at(age)),
        }),
        status: Some(TaskStatus {
            timestamp: Some(at(age)),
            ..Default::default()
        }),
        ..Default::default()
    };
    t.status.as_mut().unwrap().set_state(state);
    t.set_desired_state(desired);
    t
}

#[test]
fn service_ls_table() {
    let web = service(
        "aaaaaaaaaaaaaaaaaaaaaaaaa",
        "web",
        Mode::Replicated(ReplicatedService { replicas: 3 }),
        vec![PortConfig {
            target_port: 80,
            published_port: 8080,
            ..Default::default()
        }],
    );
    let agent = service(
        "bbbbbbbbbbbbbbbbbbbbbbbbb",
        "agent",
        Mode::Global(GlobalService {}),
        vec![],
    );
    let running = TaskState::Running;
    let tasks = vec![
        task("t1", &web, 1, running, running, 10),
        task("t2", &web, 2, running, running, 10),
        task("t3", &web, 3, TaskState::Preparing, running, 10),
        task("t4", &web, 3, TaskState::Failed, TaskState::Shutdown, 20),
        task("t5", &agent, 0, running, running, 10),
    ];
    let rows: Vec<ServiceRow<'_>> = [&web, &agent]
        .into_iter()
        .map(|s| ServiceRow {
            service: s,
            counts: ReplicaCounts::of(s, &tasks),
        })
        .collect();
    assert_eq!(
        service_table(&rows),
        "\
ID             NAME    MODE         REPLICAS   IMAGE            PORTS
aaaaaaaaaaaa   web     replicated   2/3        busybox:latest   *:8080->80/tcp
bbbbbbbbbbbb   agent   global       1/1        busybox:latest
"
    );
}

#[test]
fn service_ps_table_shows_history_under_the_slot() {
    let web = service(
        "aaaaaaaaaaaaaaaaaaaaaaaaa",
        "web",
        Mode::Replicated(ReplicatedService { replicas: 2 }),
        vec![],
    );
    let running = TaskState::Running;
    let mut failed = task(
        "oldtask000000000000000001",
        &web,
        1,
        TaskState::Failed,
        TaskState::Shutdown,
        120,
    );
    failed.status.as_mut().unwrap().err = "exit code 1".into();
    let tasks = vec![
        failed,
        task("newtask000000000000000001", &web, 1, running, running, 5),
        task(
            "newtask000000000000000002",
            &web,
            2,
            TaskState::Pending,
            running,
            0,
        ),
    ];
    let names = Names {
        nodes: BTreeMap::from([("node1".to_string(), "host-a".to_string())]),
    };
    assert_eq!(
        task_table(&tasks, &names, now()),
        "\
ID             NAME        IMAGE            NODE     DESIRED STATE   CURRENT STATE                    ERROR
newtask00000   web.1       busybox:latest   host-a   Running         Running 5 seconds ago
oldtask00000    \\_ web.1   busybox:latest   host-a   Shutdown        Failed 2 minutes ago             \"exit code 1\"
newtask00000   web.2       busybox:latest   host-a   Running         Pending Less than a second ago
"
    );
}

#[test]
fn node_ls_table() {
    let mut leader = Node {
        id: "m1".into(),
        role: NodeRole::Manager.into(),
        description: Some(NodeDescription {
            hostname: "alpha".into(),
            executor: "process".into(),
            ..Default::default()
        }),
        manager_status: Some(ManagerStatus {
            leader: true,
            ..Default::default()
        }),
        status: Some(NodeStatus::default()),
        spec: Some(NodeSpec::default()),
        ..Default::default()
    };
    leader.status.as_mut().unwrap().set_state(NodeState::Ready);
    let mut worker = Node {
        id: "w1".into(),
        description: Some(NodeDescription {
            hostname: "beta".into(),
            executor: "runc".into(),
            ..Default::default()
        }),
        status: Some(NodeStatus::default()),
        spec: Some(NodeSpec::default()),
        ..Default::default()
    };
    worker.status.as_mut().unwrap().set_state(NodeState::Down);
    worker
        .spec
        .as_mut()
        .unwrap()
        .set_availability(NodeAvailability::Drain);
    assert_eq!(
        node_table(&[worker, leader], Some("m1")),
        "\
ID     HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS   EXECUTOR
m1 *   alpha      Ready    Active         Leader           process
w1     beta       Down     Drain                           runc
"
    );
}

#[test]
fn network_and_secret_tables() {
    let net = |id: &str, name: &str, subnet: &str| Network {
        id: id.into(),
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ipam: Some(IpamOptions {
            driver: None,
            configs: vec![IpamConfig {
                subnet: subnet.into(),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    assert_eq!(
        network_table(&[
            net("n2n2n2n2n2n2n2", "ingress", "10.0.0.0/24"),
            net("n1", "backend", "10.0.1.0/24")
        ]),
        "\
NETWORK ID     NAME      DRIVER    SCOPE   SUBNET
n1             backend   overlay   swarm   10.0.1.0/24
n2n2n2n2n2n2   ingress   overlay   swarm   10.0.0.0/24
"
    );
    let secret = Secret {
        id: "s1".into(),
        meta: Some(Meta {
            version: 3,
            created_at: Some(at(7200)),
            updated_at: Some(at(30)),
        }),
        spec: Some(SecretSpec {
            annotations: Some(Annotations {
                name: "db-password".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        secret_table(&[secret], now()),
        "\
ID   NAME          CREATED       UPDATED
s1   db-password   2 hours ago   30 seconds ago
"
    );
}

#[test]
fn json_uses_readable_enum_names() {
    let web = service(
        "aaaaaaaaaaaaaaaaaaaaaaaaa",
        "web",
        Mode::Replicated(ReplicatedService { replicas: 3 }),
        vec![],
    );
    let t = task("t1", &web, 1, TaskState::Running, TaskState::Running, 0);
    let text = json(&[t]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v[0]["status"]["state"], "running");
    assert_eq!(v[0]["desired_state"], "running");
    assert_eq!(v[0]["slot"], 1);
    let text = json(&web).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["spec"]["mode"]["replicated"]["replicas"], 3);
    assert_eq!(v["spec"]["annotations"]["name"], "web");
    // And it reads back.
    let back: Service = serde_json::from_str(&text).unwrap();
    assert_eq!(back, web);
}
