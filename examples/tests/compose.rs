//! Compose files: what parses, what is refused, and the stack it plans.

#![allow(clippy::unwrap_used, reason = "tests")]

use swarm_api::EnumName;
use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;
use swarm_examples::ctl::compose::{ComposeError, parse};
use swarm_examples::ctl::stack::{NAMESPACE_LABEL, plan};

const GOOD: &str = r#"
version: "3.8"
services:
  web:
    image: nginx:alpine
    command: ["nginx", "-g", "daemon off;"]
    environment:
      - MODE=prod
      - EMPTY=
    ports:
      - "8080:80"
      - target: 443
        published: 8443
        protocol: tcp
        mode: host
    networks:
      front:
        aliases: [www]
      back:
    deploy:
      replicas: 3
      labels:
        tier: frontend
      placement:
        constraints: [node.labels.zone==a, node.role==worker]
        preferences:
          - spread: node.labels.rack
        max_replicas_per_node: 2
      resources:
        limits: {cpus: '0.5', memory: 256M}
        reservations: {memory: 64M}
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        order: start-first
      restart_policy:
        condition: on-failure
        delay: 3s
        max_attempts: 4
  worker:
    image: busybox
    command: sleep 3600
    environment:
      QUEUE: jobs
      RETRIES: 3
    deploy:
      mode: global
networks:
  front:
  back:
    driver: overlay
    internal: true
"#;

#[test]
fn a_full_file_plans_the_expected_stack() {
    let file = parse(GOOD).unwrap();
    let p = plan("shop", &file).unwrap();

    let net_names: Vec<&str> = p
        .networks
        .iter()
        .map(|n| n.annotations.as_ref().unwrap().name.as_str())
        .collect();
    // `worker` lists no network: it gets the stack's default one.
    assert_eq!(net_names, ["shop_back", "shop_front", "shop_default"]);
    assert!(p.networks[0].internal);
    for n in &p.networks {
        assert_eq!(n.driver_config.as_ref().unwrap().name, "overlay");
        assert_eq!(
            n.annotations.as_ref().unwrap().labels[NAMESPACE_LABEL],
            "shop"
        );
    }

    assert_eq!(p.services.len(), 2);
    let web = &p.services[0];
    let ann = web.annotations.as_ref().unwrap();
    assert_eq!(ann.name, "shop_web");
    assert_eq!(ann.labels[NAMESPACE_LABEL], "shop");
    assert_eq!(ann.labels["tier"], "frontend");
    assert_eq!(
        web.mode,
        Some(Mode::Replicated(ReplicatedService { replicas: 3 }))
    );
    let task = web.task.as_ref().unwrap();
    let c = task.container.as_ref().unwrap();
    assert_eq!(c.image, "nginx:alpine");
    assert_eq!(c.command, ["nginx", "-g", "daemon off;"]);
    assert_eq!(c.env, ["MODE=prod", "EMPTY="]);
    let placement = task.placement.as_ref().unwrap();
    assert_eq!(
        placement.constraints,
        ["node.labels.zone==a", "node.role==worker"]
    );
    assert_eq!(placement.max_replicas, 2);
    assert_eq!(placement.preferences.len(), 1);
    let res = task.resources.as_ref().unwrap();
    assert_eq!(res.limits.as_ref().unwrap().nano_cpus, 500_000_000);
    assert_eq!(res.limits.as_ref().unwrap().memory_bytes, 256 << 20);
    assert_eq!(res.reservations.as_ref().unwrap().memory_bytes, 64 << 20);
    let restart = task.restart.as_ref().unwrap();
    assert_eq!(restart.condition(), RestartCondition::OnFailure);
    assert_eq!(restart.max_attempts, 4);
    assert_eq!(restart.delay.as_ref().unwrap().seconds, 3);
    let update = web.update.as_ref().unwrap();
    assert_eq!(update.parallelism, 2);
    assert_eq!(update.failure_action(), FailureAction::Rollback);
    assert_eq!(update.order(), UpdateOrder::StartFirst);
    assert_eq!(update.delay.as_ref().unwrap().seconds, 10);
    let ports = &web.endpoint.as_ref().unwrap().ports;
    assert_eq!((ports[0].published_port, ports[0].target_port), (8080, 80));
    assert_eq!(ports[1].publish_mode(), PublishMode::Host);
    let nets: Vec<(&str, &[String])> = task
        .networks
        .iter()
        .map(|n| (n.target.as_str(), n.aliases.as_slice()))
        .collect();
    assert_eq!(
        nets,
        [
            ("shop_back", &["web".to_string()][..]),
            ("shop_front", &["web".to_string(), "www".to_string()][..]),
        ]
    );

    let worker = &p.services[1];
    assert_eq!(worker.mode, Some(Mode::Global(GlobalService {})));
    let c = worker.task.as_ref().unwrap().container.as_ref().unwrap();
    assert_eq!(c.command, ["sleep", "3600"]);
    assert_eq!(c.env, ["QUEUE=jobs", "RETRIES=3"]);
    assert_eq!(
        worker.task.as_ref().unwrap().networks[0].target,
        "shop_default"
    );
    // Every planned spec passes the manager's own validation.
    for s in &p.services {
        swarm_api::validate::validate_service_spec(s).unwrap();
    }
    assert_eq!(RestartCondition::OnFailure.short_name(), "on_failure");
}

#[test]
fn external_networks_are_used_by_name() {
    let file = parse(
        "services:\n  a:\n    image: x\n    networks: [shared]\nnetworks:\n  shared:\n    external: true\n",
    )
    .unwrap();
    let p = plan("s", &file).unwrap();
    assert!(p.networks.is_empty());
    assert_eq!(p.external_networks, ["shared"]);
    assert_eq!(
        p.services[0].task.as_ref().unwrap().networks[0].target,
        "shared"
    );
}

#[test]
fn host_network_services_join_no_network() {
    let f = parse("services:\n  a:\n    image: x\n    network_mode: host\n").unwrap();
    let p = plan("s", &f).unwrap();
    assert!(
        p.networks.is_empty(),
        "no default network: {:?}",
        p.networks
    );
    let task = p.services[0].task.as_ref().unwrap();
    assert!(task.networks.is_empty());
}

fn refused(text: &str) -> String {
    match parse(text) {
        Err(e @ (ComposeError::Parse(_) | ComposeError::Invalid(_))) => e.to_string(),
        Err(e) => e.to_string(),
        Ok(f) => match plan("s", &f) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted:\n{text}"),
        },
    }
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let cases: &[(&str, &str)] = &[
        ("services: [", "invalid compose file"),
        ("version: '3'\n", "no services defined"),
        (
            "version: '2'\nservices:\n  a:\n    image: x\n",
            "version \"2\" is not supported",
        ),
        ("services:\n  a:\n    build: .\n", "build"),
        (
            "services:\n  a:\n    image: x\n    deploy:\n      replicas: many\n",
            "replicas",
        ),
        (
            "services:\n  a:\n    image: x\n    networks: [nope]\n",
            "undefined network \"nope\"",
        ),
        (
            "services:\n  a:\n    environment: [A=1]\n",
            "needs an image or a command",
        ),
        (
            "services:\n  a:\n    image: x\n    ports: ['99999:80']\n",
            "service \"a\": invalid --publish",
        ),
        (
            "services:\n  a:\n    image: x\n    deploy:\n      mode: sideways\n",
            "expected replicated, global",
        ),
        (
            "services:\n  a:\n    image: x\nnetworks:\n  n:\n    driver: bridge\n",
            "only overlay",
        ),
        (
            "services:\n  a:\n    image: x\n    deploy:\n      restart_policy:\n        condition: sometimes\n",
            "sometimes",
        ),
        (
            "services:\n  a:\n    image: x\n    network_mode: bridge\n",
            "only `host` is supported",
        ),
        (
            "services:\n  a:\n    image: x\n    network_mode: host\n    networks: [front]\nnetworks:\n  front: {}\n",
            "cannot also join networks",
        ),
    ];
    for (text, expected) in cases {
        let msg = refused(text);
        assert!(
            msg.contains(expected),
            "{text:?}: {msg:?} lacks {expected:?}"
        );
    }
}
