//! `swarmctl service logs` through the real binaries: a manager (drained)
//! and a worker as `swarmd` processes, a service whose task counts, and
//! the CLI printing the last lines, then following new ones, each
//! prefixed like docker's (`web.1.<task id>@<node> | text`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use swarm_examples::local::query;
use swarm_examples::local::{Binaries, ClusterOptions, LocalCluster, Role};

/// The nodes' addresses (other tests use other 127.x.y networks).
const NET: &str = "127.0.11";

/// Prints `line N` for N = 1, 2, ... five times a second.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.2; done";

fn cluster() -> LocalCluster {
    let bins = Binaries {
        swarmd: env!("CARGO_BIN_EXE_swarmd").into(),
        swarmctl: env!("CARGO_BIN_EXE_swarmctl").into(),
    };
    LocalCluster::new(bins, ClusterOptions::for_test(NET, "logs").unwrap()).unwrap()
}

/// `line N` of a printed log line, checking its prefix.
fn number(line: &str, prefix: &str) -> u64 {
    let (p, text) = line
        .split_once(" | ")
        .unwrap_or_else(|| panic!("no ` | ` in {line:?}"));
    assert_eq!(p.trim_end(), prefix, "{line:?}");
    text.strip_prefix("line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a counter line: {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_logs_prints_the_tail_then_follows() {
    let mut c = cluster();
    c.init("m1", &format!("{NET}.1"), &["--availability", "drain"])
        .await
        .unwrap();
    c.join("w1", &format!("{NET}.2"), Role::Worker, &[])
        .await
        .unwrap();
    c.ctl(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "1",
        "--detach",
        "busybox",
        "sh",
        "-c",
        COUNTER,
    ])
    .unwrap();
    let task = c
        .wait_for(
            "the web task running",
            Duration::from_secs(60),
            |api| async move {
                let tasks = api.tasks("web").await?;
                Ok(tasks.into_iter().find(query::is_running))
            },
        )
        .await
        .unwrap();
    let prefix = format!("web.1.{}@w1", &task.id[..12]);

    // The last two lines, once the task has written a few.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let tail = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no two lines from `service logs --tail 2 web`"
        );
        let out = c.ctl(&["service", "logs", "--tail", "2", "web"]).unwrap();
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        if lines.len() == 2 && number(&lines[0], &prefix) >= 3 {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let n = number(&tail[0], &prefix);
    assert_eq!(number(&tail[1], &prefix), n + 1, "{tail:?}");

    // Timestamps after the bar; `--since` a line's own time starts at it.
    let out = c.ctl(&["service", "logs", "--timestamps", "web"]).unwrap();
    let stamped: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let (p, rest) = l.split_once(" | ").unwrap();
            let (at, text) = rest.split_once(' ').unwrap();
            humantime::parse_rfc3339(at).unwrap_or_else(|e| panic!("{at:?}: {e}"));
            (at.to_string(), format!("{p} | {text}"))
        })
        .collect();
    assert!(stamped.len() >= 4, "{out}");
    let (at, from) = &stamped[2];
    let since = c.ctl(&["service", "logs", "--since", at, "web"]).unwrap();
    let first = since
        .lines()
        .next()
        .unwrap_or_else(|| panic!("nothing --since {at}"));
    assert_eq!(
        number(first, &prefix),
        number(from, &prefix),
        "--since {at} starts at that line"
    );

    // Following: the last line, then the ones after it, in order.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_swarmctl"))
        .arg("--socket")
        .arg(c.node("m1").unwrap().socket())
        .args(["service", "logs", "--follow", "--tail", "1", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("followed only {seen:?}"));
        seen.push(number(&line, &prefix));
    }
    follow.kill().unwrap();
    let _ = follow.wait();
    assert!(
        seen[0] > n,
        "the tail is the latest line: {seen:?} after {n}"
    );
    for w in seen.windows(2) {
        assert_eq!(w[1], w[0] + 1, "followed lines in order: {seen:?}");
    }
}
