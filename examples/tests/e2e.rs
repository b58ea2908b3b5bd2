//! End to end: a real `swarmd init` process driven by the `swarmctl`
//! binary over the local socket and over mutual TLS.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{Daemon, ctl_with, fails, ok, s};

#[test]
fn swarmd_and_swarmctl_end_to_end() {
    let mut d = Daemon::init("127.0.0.41", "main");

    // init printed both join commands.
    let banner = d.stdout();
    assert!(banner.contains("Swarm initialized"), "{banner}");
    assert!(banner.contains("swarmd join --token SWMTKN-1-"), "{banner}");
    assert!(banner.contains(&d.addr), "{banner}");

    // node ls: one manager, the leader.
    let nodes = ok(d.ctl(&["node", "ls"]));
    assert!(nodes.starts_with("ID "), "{nodes}");
    assert!(nodes.contains("Leader"), "{nodes}");
    assert_eq!(nodes.lines().count(), 2, "{nodes}");

    // join-token: the full command, and -q for just the token.
    let token = ok(d.ctl(&["cluster", "join-token", "-q", "worker"]));
    assert!(token.trim().starts_with("SWMTKN-1-"));
    let text = ok(d.ctl(&["cluster", "join-token", "manager"]));
    assert!(text.contains("To add a manager"), "{text}");
    assert!(text.contains(&d.addr), "{text}");
    let rotated = ok(d.ctl(&["cluster", "join-token", "--rotate", "-q", "worker"]));
    assert_ne!(rotated.trim(), token.trim());

    // networks.
    let id = ok(d.ctl(&["network", "create", "backend"]));
    assert_eq!(id.trim().len(), 25);
    let nets = ok(d.ctl(&["network", "ls"]));
    assert!(
        nets.contains("backend") && nets.contains("ingress"),
        "{nets}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(d.ctl(&["network", "ls", "--format", "json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let err = fails(d.ctl(&["network", "create", "backend"]));
    assert!(err.contains("Error response from manager"), "{err}");

    // secrets, from stdin.
    let sock = s(&d.socket).to_string();
    let conn = ["--socket", sock.as_str()];
    ok(ctl_with(
        &conn,
        &["secret", "create", "db", "-"],
        Some(b"hunter2"),
    ));
    let secrets = ok(d.ctl(&["secret", "ls"]));
    assert!(secrets.contains(" db "), "{secrets}");
    let inspect = ok(d.ctl(&["secret", "inspect", "db"]));
    assert!(
        !inspect.contains("aHVudGVyMg"),
        "secret data must not be shown"
    );

    // services.
    let id = ok(d.ctl(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "2",
        "--network",
        "backend",
        "--secret",
        "db",
        "-p",
        "8080:80",
        "--env",
        "A=1",
        "busybox",
        "sleep",
        "300",
    ]));
    let id = id.trim().to_string();
    assert_eq!(id.len(), 25);
    let ls = ok(d.ctl(&["service", "ls"]));
    let row = ls.lines().find(|l| l.contains("web")).unwrap();
    assert!(row.contains("replicated"), "{ls}");
    assert!(row.contains("/2"), "{ls}");
    assert!(row.contains("*:8080->80/tcp"), "{ls}");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(d.ctl(&["service", "inspect", "web"]))).unwrap();
    assert_eq!(inspect[0]["id"], id.as_str());
    assert_eq!(inspect[0]["spec"]["mode"]["replicated"]["replicas"], 2);
    assert_eq!(
        inspect[0]["spec"]["task"]["container"]["command"],
        serde_json::json!(["sleep", "300"])
    );

    // versioned updates.
    ok(d.ctl(&["service", "scale", "-d", "web=3"]));
    ok(d.ctl(&[
        "service",
        "update",
        "-d",
        "--env-add",
        "B=2",
        "--update-parallelism",
        "2",
        "web",
    ]));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(d.ctl(&["service", "inspect", "web"]))).unwrap();
    assert_eq!(inspect[0]["spec"]["mode"]["replicated"]["replicas"], 3);
    assert_eq!(
        inspect[0]["spec"]["task"]["container"]["env"],
        serde_json::json!(["A=1", "B=2"])
    );
    assert_eq!(inspect[0]["spec"]["update"]["parallelism"], 2);
    ok(d.ctl(&["service", "rollback", "-d", "web"]));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(d.ctl(&["service", "inspect", "web"]))).unwrap();
    assert_eq!(inspect[0]["spec"]["mode"]["replicated"]["replicas"], 3);
    assert!(inspect[0]["spec"]["update"].is_null());

    // bad input: non-zero exit and the server's message.
    let err = fails(d.ctl(&["service", "inspect", "nope"]));
    assert!(err.contains("not found"), "{err}");
    let err = fails(d.ctl(&[
        "service",
        "create",
        "-d",
        "--name",
        "bad",
        "--constraint",
        "node.labels.x=~y",
        "busybox",
    ]));
    assert!(err.contains("constraints[0]"), "{err}");
    let err = fails(d.ctl(&[
        "service", "create", "-d", "--name", "bad2", "-p", "x:80", "busybox",
    ]));
    assert!(err.contains("invalid --publish"), "{err}");
    let err = fails(d.ctl(&["service", "scale", "-d", "nope=2"]));
    assert!(err.contains("not found"), "{err}");
    fails(d.ctl(&["service", "bogus-subcommand"]));

    // no worker here: following a rollout times out with a clear message.
    let out = d.ctl(&[
        "service",
        "update",
        "--timeout",
        "1s",
        "--args",
        "sleep 301",
        "web",
    ]);
    let err = fails(out);
    assert!(err.contains("did not converge within 1s"), "{err}");

    // a stack from a compose file.
    let compose = d.dir.join("stack.yml");
    std::fs::write(
        &compose,
        "services:\n  api:\n    image: busybox\n    command: sleep 60\n    deploy:\n      replicas: 2\n",
    )
    .unwrap();
    let out = ok(d.ctl(&["stack", "deploy", "-c", s(&compose), "demo"]));
    assert!(out.contains("Creating network demo_default"), "{out}");
    assert!(out.contains("Creating service demo_api"), "{out}");
    let out = ok(d.ctl(&["stack", "deploy", "-c", s(&compose), "demo"]));
    assert!(out.contains("Updating service demo_api"), "{out}");
    let stacks = ok(d.ctl(&["stack", "ls"]));
    assert!(stacks.lines().any(|l| l.starts_with("demo ")), "{stacks}");
    std::fs::write(&compose, "services:\n  api:\n    build: .\n").unwrap();
    let err = fails(d.ctl(&["stack", "deploy", "-c", s(&compose), "demo"]));
    assert!(
        err.contains("invalid compose file") && err.contains("build"),
        "{err}"
    );
    ok(d.ctl(&["stack", "rm", "demo"]));

    // the same API over mutual TLS with the node's manager certificate.
    let certs = d.state_dir().join("certificates");
    let out = ok(ctl_with(
        &["--host", &d.addr, "--cert-dir", s(&certs)],
        &["service", "ls", "-q"],
        None,
    ));
    assert_eq!(out.trim(), id);
    let err = fails(ctl_with(
        &["--host", &d.addr, "--cert-dir", "/nonexistent"],
        &["service", "ls"],
        None,
    ));
    assert!(err.contains("certificates in /nonexistent"), "{err}");

    // removal.
    ok(d.ctl(&["service", "rm", "web"]));
    let ls = ok(d.ctl(&["service", "ls", "-q"]));
    assert!(ls.trim().is_empty(), "{ls}");

    // clean shutdown on SIGTERM, then a restart from the state directory.
    assert!(d.terminate(Duration::from_secs(10)), "log:\n{}", d.log());
    assert!(!d.socket.exists(), "the socket is removed on shutdown");
    let d = d.restart();
    let nets = ok(d.ctl(&["network", "ls"]));
    assert!(nets.contains("backend"), "state survives a restart: {nets}");
    assert!(d.stdout().is_empty(), "a restart prints no join tokens");
    let err = fails(ctl_with(
        &["--socket", "/nonexistent/control.sock"],
        &["node", "ls"],
        None,
    ));
    assert!(err.contains("cannot reach the control socket"), "{err}");
}
