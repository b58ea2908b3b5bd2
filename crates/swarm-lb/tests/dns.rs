//! The embedded DNS in a sandbox namespace: answers checked with `dig` and
//! from Rust, forwarding to a local fake upstream, internal networks,
//! dead upstreams and malformed packets.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use swarm_lb::dns::{
    NetworkRecord, RecordDb, ResolutionMode, ResolverConfig, SandboxResolver, ServiceRecord,
    TaskRecord, Upstreams,
};

const RESOLVER: &str = "127.0.0.11:53";

/// A fake upstream on loopback in the root namespace: `example.com` is
/// 192.0.2.80, everything else NXDOMAIN. Counts the queries it gets.
fn fake_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            c.fetch_add(1, Ordering::SeqCst);
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            r.metadata.recursion_available = true;
            r.queries = q.queries.clone();
            match q.queries.first() {
                Some(query) if query.name().to_ascii() == "example.com." => {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        30,
                        RData::from(IpAddr::from([192, 0, 2, 80])),
                    ));
                }
                _ => r.metadata.response_code = ResponseCode::NXDomain,
            }
            let _ = s.send_to(&r.to_vec().unwrap(), from);
        }
    });
    (addr, count)
}

/// An upstream that never answers.
fn dead_upstream() -> (SocketAddr, UdpSocket) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    (s.local_addr().unwrap(), s)
}

fn db() -> Arc<RecordDb> {
    let db = Arc::new(RecordDb::new());
    db.set_network(NetworkRecord {
        id: "front".into(),
        internal: false,
    });
    db.set_network(NetworkRecord {
        id: "back".into(),
        internal: true,
    });
    db.set_service(
        "front",
        ServiceRecord {
            id: "s-web".into(),
            name: "web".into(),
            aliases: vec![],
            mode: ResolutionMode::Vip,
            vip: Some(ip("10.0.1.2")),
        },
    )
    .unwrap();
    db.set_service(
        "front",
        ServiceRecord {
            id: "s-rr".into(),
            name: "rr".into(),
            aliases: vec![],
            mode: ResolutionMode::Dnsrr,
            vip: None,
        },
    )
    .unwrap();
    db.set_service(
        "back",
        ServiceRecord {
            id: "s-db".into(),
            name: "db".into(),
            aliases: vec![],
            mode: ResolutionMode::Vip,
            vip: Some(ip("10.0.2.2")),
        },
    )
    .unwrap();
    for (net, id, svc, name, addr) in [
        ("front", "t1", "s-web", "web.1.t1", "10.0.1.3"),
        ("front", "t2", "s-web", "web.2.t2", "10.0.1.4"),
        ("front", "t3", "s-rr", "rr.1.t3", "10.0.1.5"),
        ("front", "t4", "s-rr", "rr.2.t4", "10.0.1.6"),
        ("back", "t5", "s-db", "db.1.t5", "10.0.2.3"),
    ] {
        db.set_task(
            net,
            TaskRecord {
                id: id.into(),
                name: name.into(),
                service_id: svc.into(),
                addr: ip(addr),
                aliases: vec![],
            },
        )
        .unwrap();
    }
    db
}

async fn resolver(
    ns: &Ns,
    db: Arc<RecordDb>,
    nets: &[&str],
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
) -> SandboxResolver {
    let mut cfg = ResolverConfig::new(
        ns.netns(),
        nets.iter().map(|s| s.to_string()).collect(),
        vec![],
    );
    cfg.upstreams = Upstreams::new(upstreams, timeout);
    SandboxResolver::start(db, cfg).await.unwrap()
}

/// Sends raw bytes to the resolver from inside `ns`; the raw answer.
fn raw(ns: &str, bytes: Vec<u8>, wait: Duration) -> Option<Vec<u8>> {
    swarm_lb::NetNs::named(ns)
        .run(move || {
            let s = UdpSocket::bind("127.0.0.1:0").ok()?;
            s.set_read_timeout(Some(wait)).ok()?;
            s.send_to(&bytes, sa(RESOLVER)).ok()?;
            let mut buf = [0u8; 4096];
            let (n, _) = s.recv_from(&mut buf).ok()?;
            Some(buf[..n].to_vec())
        })
        .unwrap()
}

fn query_bytes(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

/// Asks from inside `ns` (blocking thread): (rcode, sorted addresses).
async fn ask(ns: &Ns, name: &str, t: RecordType) -> (ResponseCode, Vec<IpAddr>) {
    let bytes = query_bytes(name, t);
    let netns_name = ns.name.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let ns = swarm_lb::NetNs::named(&netns_name);
        ns.run(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.send_to(&bytes, sa(RESOLVER)).unwrap();
            let mut buf = [0u8; 4096];
            let (n, _) = s.recv_from(&mut buf).expect("an answer");
            buf[..n].to_vec()
        })
        .unwrap()
    })
    .await
    .unwrap();
    let m = Message::from_vec(&answer).unwrap();
    assert_eq!(m.metadata.message_type, MessageType::Response);
    let mut addrs: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    addrs.sort();
    (m.metadata.response_code, addrs)
}

fn dig(ns: &str, args: &[&str]) -> String {
    let mut v = vec![
        "netns",
        "exec",
        ns,
        "dig",
        "@127.0.0.11",
        "+time=3",
        "+tries=1",
    ];
    v.extend_from_slice(args);
    let out = std::process::Command::new("ip").args(&v).output().unwrap();
    assert!(
        out.status.success(),
        "dig failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have_dig() -> bool {
    let ok = std::process::Command::new("dig").arg("-v").output().is_ok();
    if !ok {
        eprintln!("skipping dig checks: bind9-dnsutils is not installed (bash scripts/setup)");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_service_task_and_forwarded_names() {
    if !can_run() {
        return;
    }
    let ns = Ns::new("dns");
    let (up, up_count) = fake_upstream();
    let db = db();
    let r = resolver(
        &ns,
        db.clone(),
        &["front"],
        vec![up],
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(r.local_addr(), sa(RESOLVER));

    assert_eq!(
        ask(&ns, "web", RecordType::A).await,
        (ResponseCode::NoError, vec![ip("10.0.1.2")])
    );
    assert_eq!(
        ask(&ns, "tasks.web", RecordType::A).await,
        (ResponseCode::NoError, vec![ip("10.0.1.3"), ip("10.0.1.4")])
    );
    assert_eq!(
        ask(&ns, "rr", RecordType::A).await,
        (ResponseCode::NoError, vec![ip("10.0.1.5"), ip("10.0.1.6")])
    );
    assert_eq!(
        ask(&ns, "web.2.t2", RecordType::A).await,
        (ResponseCode::NoError, vec![ip("10.0.1.4")])
    );
    // a known name without AAAA: NODATA, not forwarded
    assert_eq!(
        ask(&ns, "web", RecordType::AAAA).await,
        (ResponseCode::NoError, vec![])
    );
    assert_eq!(up_count.load(Ordering::SeqCst), 0);
    // not on a shared network: the sandbox cannot see "db"; it goes upstream
    assert_eq!(
        ask(&ns, "db", RecordType::A).await.0,
        ResponseCode::NXDomain
    );
    // unknown names are forwarded
    assert_eq!(
        ask(&ns, "example.com", RecordType::A).await,
        (ResponseCode::NoError, vec![ip("192.0.2.80")])
    );
    assert_eq!(up_count.load(Ordering::SeqCst), 2);

    // records change at once: a task stops, the VIP moves
    db.remove_task("front", "t1");
    db.set_service(
        "front",
        ServiceRecord {
            id: "s-web".into(),
            name: "web".into(),
            aliases: vec![],
            mode: ResolutionMode::Vip,
            vip: Some(ip("10.0.1.9")),
        },
    )
    .unwrap();
    assert_eq!(
        ask(&ns, "tasks.web", RecordType::A).await.1,
        vec![ip("10.0.1.4")]
    );
    assert_eq!(ask(&ns, "web", RecordType::A).await.1, vec![ip("10.0.1.9")]);
    assert_eq!(
        ask(&ns, "web.1.t1", RecordType::A).await.0,
        ResponseCode::NXDomain
    );

    if have_dig() {
        let ns = ns.name.clone();
        let out = tokio::task::spawn_blocking(move || {
            let a = dig(&ns, &["+noall", "+answer", "web"]);
            let b = dig(&ns, &["+short", "tasks.rr"]);
            let c = dig(&ns, &["+short", "example.com"]);
            let d = dig(&ns, &["+tcp", "+short", "web"]);
            let e = dig(&ns, &["+short", "-x", "10.0.1.4"]);
            (a, b, c, d, e)
        })
        .await
        .unwrap();
        // "web.  600  IN  A  10.0.1.9"
        let fields: Vec<&str> = out.0.split_whitespace().collect();
        assert_eq!(
            fields,
            vec!["web.", "600", "IN", "A", "10.0.1.9"],
            "{}",
            out.0
        );
        let mut rr: Vec<&str> = out.1.lines().collect();
        rr.sort();
        assert_eq!(rr, vec!["10.0.1.5", "10.0.1.6"]);
        assert_eq!(out.2.trim(), "192.0.2.80");
        assert_eq!(out.3.trim(), "10.0.1.9", "over TCP");
        assert_eq!(out.4.trim(), "web.2.t2.");
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_networks_never_forward() {
    if !can_run() {
        return;
    }
    let ns = Ns::new("dnsi");
    let (up, up_count) = fake_upstream();
    let r = resolver(&ns, db(), &["back"], vec![up], Duration::from_secs(2)).await;
    assert_eq!(
        ask(&ns, "db", RecordType::A).await,
        (ResponseCode::NoError, vec![ip("10.0.2.2")])
    );
    assert_eq!(
        ask(&ns, "example.com", RecordType::A).await,
        (ResponseCode::Refused, vec![])
    );
    // a name of another network stays invisible and is not forwarded either
    assert_eq!(
        ask(&ns, "web", RecordType::A).await,
        (ResponseCode::Refused, vec![])
    );
    assert_eq!(
        up_count.load(Ordering::SeqCst),
        0,
        "an internal network leaked a query"
    );
    // attached to a non-internal network as well: forwarding is allowed
    r.set_networks(vec!["back".into(), "front".into()]);
    assert_eq!(ask(&ns, "web", RecordType::A).await.1, vec![ip("10.0.1.2")]);
    assert_eq!(
        ask(&ns, "example.com", RecordType::A).await.1,
        vec![ip("192.0.2.80")]
    );
    assert_eq!(up_count.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_does_not_delay_swarm_names() {
    if !can_run() {
        return;
    }
    let ns = Ns::new("dnsd");
    let (dead, _keep) = dead_upstream();
    let timeout = Duration::from_secs(3);
    let _r = resolver(&ns, db(), &["front"], vec![dead], timeout).await;
    // A burst of forwarded queries is pending on the dead upstream...
    let name = ns.name.clone();
    let pending = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let answers: Vec<Option<Vec<u8>>> = (0..20)
            .map(|i| {
                raw(
                    &name,
                    query_bytes(&format!("host{i}.example.org"), RecordType::A),
                    Duration::from_millis(1),
                )
            })
            .collect();
        (answers, start)
    });
    let (_, started) = pending.await.unwrap();
    // ...while swarm names answer right away, well before the upstream timeout.
    let t = Instant::now();
    for _ in 0..5 {
        assert_eq!(ask(&ns, "web", RecordType::A).await.1, vec![ip("10.0.1.2")]);
    }
    let took = t.elapsed();
    assert!(
        started.elapsed() < timeout,
        "the test itself was too slow to show anything"
    );
    assert!(
        took < timeout / 2,
        "internal answers waited on the dead upstream: {took:?}"
    );
    // and the forwarded query itself fails with SERVFAIL after the timeout
    let (rcode, _) = ask(&ns, "late.example.org", RecordType::A).await;
    assert_eq!(rcode, ResponseCode::ServFail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_an_error_or_nothing_never_a_crash() {
    if !can_run() {
        return;
    }
    let ns = Ns::new("dnsm");
    let (up, _) = fake_upstream();
    let _r = resolver(&ns, db(), &["front"], vec![up], Duration::from_secs(1)).await;
    let good = query_bytes("web", RecordType::A);
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff],
        good[..11].to_vec(), // shorter than a header
        good[..14].to_vec(), // question cut short
        {
            let mut b = good.clone(); // claims 5 questions
            b[5] = 5;
            b
        },
        {
            let mut b = good.clone(); // a response, not a query
            b[2] |= 0x80;
            b
        },
        {
            let mut b = good.clone(); // label pointer loop
            b.truncate(12);
            b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            b
        },
        {
            let mut b = good.clone(); // opcode UPDATE
            b[2] = (b[2] & 0x87) | (5 << 3);
            b
        },
    ];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for len in [12usize, 17, 40, 300, 511] {
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            b.push(rng as u8);
        }
        cases.push(b);
    }
    let name = ns.name.clone();
    let answers = tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .map(|c| raw(&name, c, Duration::from_millis(300)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    // cut question -> FORMERR; 5 claimed questions -> FORMERR; UPDATE -> NOTIMP
    for (i, want) in [
        (3usize, ResponseCode::FormErr),
        (4, ResponseCode::FormErr),
        (7, ResponseCode::NotImp),
    ] {
        let a = answers[i]
            .as_ref()
            .unwrap_or_else(|| panic!("case {i}: no answer"));
        assert_eq!(
            Message::from_vec(a).unwrap().metadata.response_code,
            want,
            "case {i}"
        );
    }
    // too short for a header, and responses: dropped
    for i in [0usize, 1, 2, 5] {
        assert!(answers[i].is_none(), "case {i} got an answer");
    }
    // still serving
    assert_eq!(ask(&ns, "web", RecordType::A).await.1, vec![ip("10.0.1.2")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_mode_leaves_port_53_to_the_task() {
    if !can_run() {
        return;
    }
    let ns = Ns::new("dnsr");
    // the task runs its own DNS server on port 53
    let own = ns
        .netns()
        .run(|| UdpSocket::bind("0.0.0.0:53"))
        .unwrap()
        .unwrap();
    let cfg = ResolverConfig::new(ns.netns(), vec!["front".into()], vec![]).with_redirect();
    let r = SandboxResolver::start(db(), cfg).await.unwrap();
    assert_ne!(r.local_addr().port(), 53);
    assert_eq!(
        ask(&ns, "web", RecordType::A).await,
        (ResponseCode::NoError, vec![ip("10.0.1.2")])
    );
    let listed = ns.exec(&["nft", "list", "table", "ip", swarm_lb::dns::REDIRECT_TABLE]);
    assert!(listed.status.success());
    r.shutdown().await;
    let listed = ns.exec(&["nft", "list", "table", "ip", swarm_lb::dns::REDIRECT_TABLE]);
    assert!(
        !listed.status.success(),
        "the redirect table outlived the resolver"
    );
    drop(own);
}
