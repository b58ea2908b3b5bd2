//! Three managers and fake agents over real mutual TLS: what the leader
//! was doing continues on the next leader when it dies (a rolling update;
//! address allocation).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test reports failure"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use common::cluster::*;
use common::*;
use parking_lot::Mutex;
use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::*;
use swarm_store::{By, Kind, Store, WatchFilter};
use tonic::transport::Channel;

const REPLICAS: u64 = 6;
const PARALLELISM: u64 = 2;

fn web(image: &str, networks: &[&str]) -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations {
            name: "web".into(),
            ..Default::default()
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: image.into(),
                command: vec!["sleep".into(), "1000".into()],
                ..Default::default()
            }),
            networks: networks
                .iter()
                .map(|n| NetworkAttachmentConfig {
                    target: (*n).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedService {
            replicas: REPLICAS,
        })),
        // Batches of two, each watched for 300 ms, 500 ms apart: long
        // enough to kill the leader between two batches.
        update: Some(UpdateConfig {
            parallelism: PARALLELISM,
            delay: Some(Duration::from_millis(500)),
            failure_action: FailureAction::Pause.into(),
            monitor: Some(Duration::from_millis(300)),
            max_failure_ratio: 0.0,
            order: UpdateOrder::StartFirst.into(),
        }),
        ..Default::default()
    }
}

fn image(t: &Task) -> &str {
    t.spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map_or("", |c| c.image.as_str())
}

fn wanted_running(t: &Task) -> bool {
    t.state() == TaskState::Running && t.desired_state() == TaskState::Running
}

async fn get_service(c: &mut ControlClient<Channel>, id: &str) -> Service {
    c.get_service(GetServiceRequest {
        service_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .service
    .unwrap()
}

/// Watches a manager's store and records every committed state in which a
/// slot of the service had no running task, or more running tasks than a
/// start-first update allows (two in a slot, in at most `PARALLELISM`
/// slots at once).
fn watch_slots(store: Store, service: String) -> (Arc<Mutex<Vec<String>>>, Arc<Mutex<u64>>) {
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let samples: Arc<Mutex<u64>> = Arc::default();
    let (v, n) = (violations.clone(), samples.clone());
    tokio::spawn(async move {
        let mut watcher = store.watch(WatchFilter::all().kinds([Kind::Task]));
        loop {
            match watcher.recv().await {
                Ok(swarm_store::Event::Commit { version }) => {
                    let tasks = store.view().find::<Task>(By::ServiceId(&service)).unwrap();
                    let mut running: BTreeMap<u64, usize> =
                        (1..=REPLICAS).map(|s| (s, 0)).collect();
                    for t in tasks.iter().filter(|t| t.state() == TaskState::Running) {
                        *running.entry(t.slot).or_default() += 1;
                    }
                    let doubled = running.values().filter(|n| **n == 2).count();
                    for (slot, count) in &running {
                        if *count == 0 || *count > 2 || *slot > REPLICAS {
                            v.lock().push(format!(
                                "at store version {version}: slot {slot} has {count} running tasks"
                            ));
                        }
                    }
                    if doubled > usize::try_from(PARALLELISM).unwrap() {
                        v.lock().push(format!(
                            "at store version {version}: {doubled} slots run two tasks at once"
                        ));
                    }
                    *n.lock() += 1;
                }
                Ok(_) => {}
                Err(swarm_store::WatchError::Lagged) => {
                    watcher = store.watch(WatchFilter::all().kinds([Kind::Task]));
                }
                Err(_) => return,
            }
        }
    });
    (violations, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_update_resumes_on_the_new_leader_when_the_leader_dies() {
    init_logs();
    let (_dirs, mut managers) = three_managers("rollkill").await;
    let addrs = addrs(&managers);
    let token = managers[0].join_tokens().unwrap().worker;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(FakeAgent::join_any(&addrs, &token).await);
    }
    let l = leader(&managers).await;
    let mut c = control(&managers[l]).await;
    let svc = c
        .create_service(CreateServiceRequest {
            spec: Some(web("v1", &[])),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let store = managers[l].store().clone();
    eventually("6 replicas of v1 running", || async {
        let tasks = store.view().find::<Task>(By::ServiceId(&svc.id)).ok()?;
        (tasks.iter().filter(|t| wanted_running(t)).count() == 6).then_some(())
    })
    .await;

    // Watch the slots from a manager that will survive the leader.
    let observer = (0..3).find(|i| *i != l).unwrap();
    let (violations, samples) = watch_slots(managers[observer].store().clone(), svc.id.clone());

    let current = get_service(&mut c, &svc.id).await;
    c.update_service(UpdateServiceRequest {
        service_id: svc.id.clone(),
        service_version: current.meta.unwrap().version,
        spec: Some(web("v2", &[])),
        rollback: false,
    })
    .await
    .unwrap();
    // The first batch is up: kill the leader before the next one starts.
    eventually("the first batch of v2 running", || async {
        let tasks = store.view().find::<Task>(By::ServiceId(&svc.id)).ok()?;
        let v2 = tasks
            .iter()
            .filter(|t| wanted_running(t) && image(t) == "v2")
            .count();
        (v2 >= 2).then_some(())
    })
    .await;
    let (dead, old) = kill_leader(&mut managers).await;

    // Where the old leader left the update (its store as it stopped).
    let view = old.view();
    let at_death = view.get::<Service>(&svc.id).unwrap();
    let status = at_death.update_status.clone().unwrap();
    assert_eq!(status.state(), UpdateState::Updating, "{status:?}");
    let old_tasks = view.find::<Task>(By::ServiceId(&svc.id)).unwrap();
    let done_before: BTreeSet<String> = old_tasks
        .iter()
        .filter(|t| wanted_running(t) && image(t) == "v2")
        .map(|t| t.id.clone())
        .collect();
    let v1_left = old_tasks
        .iter()
        .filter(|t| wanted_running(t) && image(t) == "v1")
        .count();
    assert!(
        v1_left >= 2,
        "the update was still under way when the leader died ({v1_left} slots at v1)"
    );

    // The new leader finishes it.
    let l = leader(&managers).await;
    assert_ne!(managers[l].node_id(), dead);
    let store = managers[l].store().clone();
    let done = eventually("the update completed on the new leader", || async {
        let s = store.view().get::<Service>(&svc.id)?;
        (s.update_status.as_ref()?.state() == UpdateState::Completed).then_some(s)
    })
    .await;
    assert_eq!(
        done.update_status.as_ref().unwrap().started_at,
        status.started_at,
        "the update resumed rather than started over"
    );
    let tasks = eventually("old tasks stopped", || async {
        let tasks = store.view().find::<Task>(By::ServiceId(&svc.id)).ok()?;
        tasks
            .iter()
            .all(|t| t.state() != TaskState::Running || t.desired_state() == TaskState::Running)
            .then_some(tasks)
    })
    .await;
    let keepers: Vec<&Arc<Task>> = tasks.iter().filter(|t| wanted_running(t)).collect();
    let slots: BTreeSet<u64> = keepers.iter().map(|t| t.slot).collect();
    assert_eq!(keepers.len(), 6, "one task per slot: {keepers:#?}");
    assert_eq!(slots, (1..=REPLICAS).collect(), "every slot kept");
    assert!(keepers.iter().all(|t| image(t) == "v2"), "all at v2");
    let wanted = tasks
        .iter()
        .filter(|t| t.desired_state() <= TaskState::Running)
        .count();
    assert_eq!(wanted, 6, "no task wanted beyond the six keepers");
    for id in &done_before {
        assert!(
            keepers.iter().any(|t| t.id == *id),
            "task {id}, updated before the leader died, was replaced again"
        );
    }
    assert!(*samples.lock() > 10, "the slot watcher saw the update");
    let violations = violations.lock().clone();
    assert!(violations.is_empty(), "{violations:#?}");
    drop(agents);
    for m in managers {
        m.shutdown().await;
    }
}

fn service(name: &str, replicas: u64, networks: &[&str]) -> ServiceSpec {
    let mut s = web("v1", networks);
    s.annotations.as_mut().unwrap().name = name.into();
    s.mode = Some(service_spec::Mode::Replicated(ReplicatedService {
        replicas,
    }));
    s
}

fn network(name: &str, subnet: Option<&str>) -> NetworkSpec {
    NetworkSpec {
        annotations: Some(Annotations {
            name: name.into(),
            ..Default::default()
        }),
        ipam: subnet.map(|s| IpamOptions {
            driver: None,
            configs: vec![IpamConfig {
                subnet: s.into(),
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
}

/// `a.b.c.d` or `a.b.c.d/n` -> the address.
fn ip(s: &str) -> Ipv4Addr {
    s.split('/').next().unwrap().parse().unwrap()
}

/// `a.b.c.d/n` -> (network address, prefix length).
fn subnet(s: &str) -> (u32, u32) {
    let (a, n) = s.split_once('/').unwrap();
    let n: u32 = n.parse().unwrap();
    let mask = u32::MAX.checked_shl(32 - n).unwrap_or(0);
    (u32::from(a.parse::<Ipv4Addr>().unwrap()) & mask, n)
}

fn contains(net: (u32, u32), ip: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - net.1).unwrap_or(0);
    u32::from(ip) & mask == net.0
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let n = a.1.min(b.1);
    let mask = u32::MAX.checked_shl(32 - n).unwrap_or(0);
    a.0 & mask == b.0 & mask
}

async fn create_service(c: &mut ControlClient<Channel>, spec: ServiceSpec) -> Service {
    c.create_service(CreateServiceRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap()
}

async fn create_network(c: &mut ControlClient<Channel>, spec: NetworkSpec) -> Network {
    c.create_network(CreateNetworkRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap()
}

/// True when every service has a VIP on each of its networks, and every
/// task that is not over has an address on each of its networks.
fn all_allocated(store: &Store) -> bool {
    let view = store.view();
    let services_done = view.all::<Service>().iter().all(|s| {
        let nets = s
            .spec
            .iter()
            .flat_map(|s| s.task.iter())
            .flat_map(|t| t.networks.iter());
        let vips = s.endpoint.iter().flat_map(|e| e.virtual_ips.iter());
        let have: BTreeSet<&str> = vips.map(|v| v.network_id.as_str()).collect();
        nets.clone().all(|n| have.contains(n.target.as_str()))
    });
    let tasks_done = view
        .all::<Task>()
        .iter()
        .filter(|t| !t.state().is_terminal() && t.desired_state() <= TaskState::Running)
        .all(|t| {
            let want = t.spec.as_ref().map_or(0, |s| s.networks.len());
            t.state() >= TaskState::Pending
                && t.networks.len() == want
                && t.networks.iter().all(|a| !a.addresses.is_empty())
        });
    services_done && tasks_done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_address_or_vip_is_allocated_twice_across_a_leader_change() {
    init_logs();
    let (_dirs, mut managers) = three_managers("alloc").await;
    let addrs = addrs(&managers);
    let token = managers[0].join_tokens().unwrap().worker;
    let mut agents = Vec::new();
    for _ in 0..2 {
        agents.push(FakeAgent::join_any(&addrs, &token).await);
    }
    let l = leader(&managers).await;
    let mut c = control(&managers[l]).await;
    let front = create_network(&mut c, network("front", Some("10.77.0.0/26"))).await;
    let mut services = BTreeMap::new();
    for name in ["a", "b", "c"] {
        let s = create_service(&mut c, service(name, 3, &["front"])).await;
        services.insert(name, s.id);
    }
    let store = managers[l].store().clone();
    eventually("the first services allocated", || async {
        let n = store.view().find::<Task>(By::All).ok()?.len();
        (n == 9 && all_allocated(&store)).then_some(())
    })
    .await;
    // One more right before the leader dies: its allocation may be cut
    // short and finished by the next leader.
    let d = create_service(&mut c, service("d", 3, &["front"])).await;
    services.insert("d", d.id);
    kill_leader(&mut managers).await;

    let l = leader(&managers).await;
    let mut c = control(&managers[l]).await;
    let back = create_network(&mut c, network("back", None)).await;
    for (name, nets) in [("e", &["front", "back"][..]), ("f", &["front"][..])] {
        let s = create_service(&mut c, service(name, 3, nets)).await;
        services.insert(name, s.id);
    }
    let a = get_service(&mut c, &services["a"]).await;
    let mut spec = a.spec.clone().unwrap();
    spec.mode = Some(service_spec::Mode::Replicated(ReplicatedService {
        replicas: 5,
    }));
    c.update_service(UpdateServiceRequest {
        service_id: a.id.clone(),
        service_version: a.meta.unwrap().version,
        spec: Some(spec),
        rollback: false,
    })
    .await
    .unwrap();
    // Removing a service frees its VIP and, once its tasks stop, their
    // addresses: they may be given again, but never while still held.
    c.remove_service(RemoveServiceRequest {
        service_id: services["b"].clone(),
    })
    .await
    .unwrap();
    // A worker joining now gets an ingress address from the new leader.
    agents.push(FakeAgent::join_any(&common::cluster::addrs(&managers), &token).await);

    let store = managers[l].store().clone();
    let b = services["b"].clone();
    eventually("everything allocated on the new leader", || async {
        let view = store.view();
        let b_held = view
            .find::<Task>(By::ServiceId(&b))
            .ok()?
            .iter()
            .any(|t| !t.state().is_terminal());
        let tasks = view
            .all::<Task>()
            .iter()
            .filter(|t| t.desired_state() <= TaskState::Running)
            .count();
        let nodes_done = view.all::<Node>().iter().all(|n| !n.attachments.is_empty());
        (!b_held && tasks == 3 * 4 + 5 && nodes_done && all_allocated(&store)).then_some(())
    })
    .await;

    let view = store.view();
    let networks: Vec<Arc<Network>> = view.all::<Network>();
    assert_eq!(networks.len(), 3, "ingress, front, back");
    // Subnets and VNIs: distinct across the networks.
    let mut subnets: Vec<(String, (u32, u32))> = Vec::new();
    let mut vnis = BTreeSet::new();
    for n in &networks {
        let configs = &n.ipam.as_ref().unwrap().configs;
        assert_eq!(configs.len(), 1, "{n:?}");
        let s = subnet(&configs[0].subnet);
        for (other, o) in &subnets {
            assert!(!overlaps(s, *o), "{} overlaps {other}", configs[0].subnet);
        }
        subnets.push((n.id.clone(), s));
        let vni = n
            .driver_state
            .as_ref()
            .and_then(|d| d.options.get(swarm_overlay::allocator::VNI_OPTION))
            .cloned()
            .unwrap();
        assert!(vnis.insert(vni.clone()), "VNI {vni} given twice");
    }
    assert_eq!(
        subnet(&front.spec.unwrap().ipam.unwrap().configs[0].subnet),
        subnets.iter().find(|(id, _)| *id == front.id).unwrap().1,
        "the subnet asked for"
    );
    assert!(subnets.iter().any(|(id, _)| *id == back.id));

    // Every address held on a network, by whom.
    let mut held: BTreeMap<(String, Ipv4Addr), String> = BTreeMap::new();
    let mut hold = |net: &str, addr: &str, who: String| {
        let a = ip(addr);
        let s = subnets.iter().find(|(id, _)| id == net).unwrap().1;
        assert!(contains(s, a), "{who}: {addr} is outside its subnet");
        if let Some(first) = held.insert((net.to_string(), a), who.clone()) {
            panic!("{addr} on network {net} given to both {first} and {who}");
        }
    };
    for n in &networks {
        let gw = &n.ipam.as_ref().unwrap().configs[0].gateway;
        if !gw.is_empty() {
            hold(&n.id, gw, format!("the gateway of {}", n.id));
        }
    }
    for s in view.all::<Service>() {
        for v in s.endpoint.iter().flat_map(|e| &e.virtual_ips) {
            hold(
                &v.network_id,
                &v.addr,
                format!("the VIP of service {}", s.id),
            );
        }
    }
    for t in view.all::<Task>() {
        if t.state().is_terminal() {
            continue;
        }
        for a in &t.networks {
            for addr in &a.addresses {
                let net = &a.network.as_ref().unwrap().id;
                hold(net, addr, format!("task {}", t.id));
            }
        }
    }
    for n in view.all::<Node>() {
        for a in &n.attachments {
            for addr in &a.addresses {
                let net = &a.network.as_ref().unwrap().id;
                hold(net, addr, format!("node {}", n.id));
            }
        }
    }
    // Besides gateways: 5 VIPs and 17 tasks on front, 1 VIP and 3 tasks
    // on back, an address for each of the 6 nodes on ingress.
    let on = |net: &str| {
        held.iter()
            .filter(|((n, _), who)| n == net && !who.starts_with("the gateway"))
            .count()
    };
    assert_eq!(on(&front.id), 5 + 17, "{held:#?}");
    assert_eq!(on(&back.id), 1 + 3, "{held:#?}");
    let ingress = networks
        .iter()
        .find(|n| n.spec.as_ref().is_some_and(|s| s.ingress))
        .unwrap();
    assert_eq!(on(&ingress.id), 6, "{held:#?}");
    drop(agents);
    for m in managers {
        m.shutdown().await;
    }
}

fn created(t: &Task) -> std::time::SystemTime {
    t.meta
        .as_ref()
        .unwrap()
        .created_at
        .as_ref()
        .unwrap()
        .to_system_time()
}

fn status_time(t: &Task) -> std::time::SystemTime {
    t.status
        .as_ref()
        .unwrap()
        .timestamp
        .as_ref()
        .unwrap()
        .to_system_time()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_delay_and_attempts_carry_over_to_the_new_leader() {
    init_logs();
    const DELAY: std::time::Duration = std::time::Duration::from_secs(1);
    let (_dirs, mut managers) = three_managers("restartkill").await;
    let addrs = addrs(&managers);
    let token = managers[0].join_tokens().unwrap().worker;
    let _agent = FakeAgent::join_any(&addrs, &token).await;
    let l = leader(&managers).await;
    let mut c = control(&managers[l]).await;
    let mut spec = service("crash", 1, &[]);
    let task = spec.task.as_mut().unwrap();
    task.container.as_mut().unwrap().image = "fail".into();
    task.restart = Some(RestartPolicy {
        condition: RestartCondition::Any.into(),
        delay: Some(DELAY.into()),
        max_attempts: 2,
        window: None,
    });
    let svc = create_service(&mut c, spec).await;
    let sorted = |store: &Store| {
        let mut tasks = store.view().find::<Task>(By::ServiceId(&svc.id)).unwrap();
        tasks.sort_by_key(|t| created(t));
        tasks
    };
    let store = managers[l].store().clone();
    // The first restart failed too: kill the leader before the second.
    eventually("the first restart failed", || async {
        let tasks = sorted(&store);
        (tasks.len() == 2 && tasks.iter().all(|t| t.state() == TaskState::Failed)).then_some(())
    })
    .await;
    let (_, old) = kill_leader(&mut managers).await;
    assert_eq!(
        sorted(&old).len(),
        2,
        "the old leader stopped before the second restart"
    );

    let l = leader(&managers).await;
    let store = managers[l].store().clone();
    eventually("the second restart, by the new leader, failed", || async {
        let tasks = sorted(&store);
        (tasks.len() == 3 && tasks.iter().all(|t| t.state() == TaskState::Failed)).then_some(())
    })
    .await;
    // Max attempts used up: no restart comes after the delay. Only waiting
    // past the moment one would be due can show it.
    tokio::time::sleep(DELAY * 2).await;
    let tasks = sorted(&store);
    assert_eq!(
        tasks.len(),
        3,
        "the new leader counted the old one's attempts"
    );
    let gap = created(&tasks[2])
        .duration_since(status_time(&tasks[1]))
        .unwrap_or_default();
    assert!(
        gap >= DELAY,
        "the new leader restarted {gap:?} after the failure"
    );
    for m in managers {
        m.shutdown().await;
    }
}
