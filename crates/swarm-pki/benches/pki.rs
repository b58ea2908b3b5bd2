//! Certificates issued per second per core (CSR in, signed certificate
//! out) and full mutual-TLS handshakes per second per core, printed beside
//! the anchors of issue 4 as ratios.
//!
//! Run: `cargo bench -p swarm-pki --bench pki` (optionally `-- --quick`).
//!
//! "Per core" is measured as work done per second of CPU time of the one
//! thread doing it (`CLOCK_THREAD_CPUTIME_ID`), so other load on the
//! machine does not skew it. The in-memory handshake figures split the CPU
//! between the server and the client side; the loopback figure runs both
//! ends and the sockets on one thread, so its per-core rate counts both
//! sides' work. A server remembers chains it has validated (per trust
//! generation), so a node reconnecting costs it one signature check less;
//! the "first contact" row shows the server side without that.

#![allow(clippy::unwrap_used, clippy::print_stdout, reason = "a bench binary")]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use rustls::{ClientConnection, ServerConnection};
use swarm_api::v1::NodeRole;
use swarm_pki::{
    ClientTls, ClientTlsBuilder, ClusterCa, CredentialsHandle, NodeCredentials, NodeKey, RootCa,
    ServerTls, ServerTlsBuilder,
};

const ANCHOR_SIGN: f64 = 50_000.0;
const ANCHOR_VERIFY: f64 = 17_000.0;
const ANCHOR_HANDSHAKE: (f64, f64) = (2_000.0, 3_000.0);
const TARGET_ISSUE: f64 = 8_000.0;
const TARGET_HANDSHAKE: f64 = 3_000.0;

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::from(t)
}

struct Measure {
    cpu: Duration,
    wall: Duration,
}

fn measure(f: impl FnOnce()) -> Measure {
    let (c0, w0) = (thread_cpu(), Instant::now());
    f();
    Measure {
        cpu: thread_cpu() - c0,
        wall: w0.elapsed(),
    }
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn credentials(ca: &ClusterCa, role: NodeRole) -> CredentialsHandle {
    let key = NodeKey::generate().unwrap();
    let issued = ca
        .issue_for_key(&key, &swarm_api::id::new_id(), role)
        .unwrap();
    CredentialsHandle::new(NodeCredentials::from_issued(key, &issued).unwrap())
}

fn row(what: &str, value: f64, anchor_name: &str, anchor: f64, target: Option<f64>) {
    let target = target
        .map(|t| format!("{:>8.2}x of target {t:.0}", value / t))
        .unwrap_or_default();
    println!(
        "{what:<46} {value:>10.0}/s   {:>6.2}x {anchor_name:<26} {target}",
        value / anchor
    );
}

/// Returns (sign/s, verify/s) of ring's P-256 on this thread.
fn bench_primitives(n: usize) -> (f64, f64) {
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, KeyPair};
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let msg = [7u8; 300];
    let sig = key.sign(&rng, &msg).unwrap();
    let m = measure(|| {
        for _ in 0..n {
            std::hint::black_box(key.sign(&rng, &msg).unwrap());
        }
    });
    let sign_rate = per_sec(n, m.cpu);
    row(
        "ring P-256 sign (reference)",
        sign_rate,
        "OpenSSL P-256 sign 50k",
        ANCHOR_SIGN,
        None,
    );
    let public = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref().to_vec(),
    );
    let m = measure(|| {
        for _ in 0..n {
            public.verify(&msg, sig.as_ref()).unwrap();
        }
    });
    let verify_rate = per_sec(n, m.cpu);
    row(
        "ring P-256 verify (reference)",
        verify_rate,
        "OpenSSL P-256 verify 17k",
        ANCHOR_VERIFY,
        None,
    );
    (sign_rate, verify_rate)
}

fn bench_issue(ca: &ClusterCa, n: usize, (sign, verify): (f64, f64)) {
    let csrs: Vec<Vec<u8>> = (0..n)
        .map(|_| NodeKey::generate().unwrap().csr_pem().unwrap().into_bytes())
        .collect();
    let ids: Vec<String> = (0..n).map(|_| swarm_api::id::new_id()).collect();
    let m = measure(|| {
        for (csr, id) in csrs.iter().zip(&ids) {
            std::hint::black_box(ca.issue(csr, id, NodeRole::Worker).unwrap());
        }
    });
    let rate = per_sec(n, m.cpu);
    row(
        "certificates issued per core (CSR -> cert)",
        rate,
        "OpenSSL P-256 sign 50k",
        ANCHOR_SIGN,
        Some(TARGET_ISSUE),
    );
    println!(
        "{:<46} {:>10.0}/s   {:>6.2}x {:<26}  (wall {:.0}/s)",
        "",
        rate,
        rate / ANCHOR_VERIFY,
        "OpenSSL P-256 verify 17k",
        per_sec(n, m.wall)
    );
    // Issuing costs one CSR signature check and one signature: the
    // ceiling on this machine right now.
    let bound = 1.0 / (1.0 / sign + 1.0 / verify);
    println!(
        "{:<46} {:>10.0}/s   {:>6.2}x of that ceiling reached",
        "  crypto ceiling (1 verify + 1 sign, ring)",
        bound,
        rate / bound
    );
}

/// Drives one handshake in memory; returns (server CPU, client CPU).
fn handshake_in_memory(server: &ServerTls, client: &ClientTls) -> (Duration, Duration) {
    let mut s_cpu = Duration::ZERO;
    let mut c_cpu = Duration::ZERO;
    let t = thread_cpu();
    let name = rustls::pki_types::ServerName::try_from("swarm-manager").unwrap();
    let mut c = ClientConnection::new(client.rustls_config(), name).unwrap();
    c_cpu += thread_cpu() - t;
    let t = thread_cpu();
    let mut s = ServerConnection::new(server.rustls_config()).unwrap();
    s_cpu += thread_cpu() - t;
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        let t = thread_cpu();
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        c_cpu += thread_cpu() - t;
        let t = thread_cpu();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets().unwrap();
        }
        let mut out = Vec::with_capacity(8192);
        while s.wants_write() {
            s.write_tls(&mut out).unwrap();
        }
        s_cpu += thread_cpu() - t;
        let t = thread_cpu();
        let mut rd = &out[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
        }
        c_cpu += thread_cpu() - t;
    }
    (s_cpu, c_cpu)
}

/// One in-memory handshake, no timing.
fn handshake_in_memory_untimed(server: &ServerTls, client: &ClientTls) {
    let name = rustls::pki_types::ServerName::try_from("swarm-manager").unwrap();
    let mut c = ClientConnection::new(client.rustls_config(), name).unwrap();
    let mut s = ServerConnection::new(server.rustls_config()).unwrap();
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets().unwrap();
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
        }
    }
}

fn bench_handshakes_in_memory(server: &ServerTls, client: &ClientTls, n: usize) {
    let mut s_total = Duration::ZERO;
    let mut c_total = Duration::ZERO;
    for _ in 0..n {
        let (s, c) = handshake_in_memory(server, client);
        s_total += s;
        c_total += c;
    }
    // Both sides, timed as one block (no per-step clock reads).
    let whole = measure(|| {
        for _ in 0..n {
            handshake_in_memory_untimed(server, client);
        }
    });
    let (lo, hi) = ANCHOR_HANDSHAKE;
    let anchor = format!("rustls {}-{}k (mid)", lo / 1000.0, hi / 1000.0);
    let mid = (lo + hi) / 2.0;
    row(
        "mTLS handshakes per core, server side",
        per_sec(n, s_total),
        &anchor,
        mid,
        Some(TARGET_HANDSHAKE),
    );
    row(
        "mTLS handshakes per core, client side",
        per_sec(n, c_total),
        &anchor,
        mid,
        None,
    );
    row(
        "mTLS handshakes per core, both sides",
        per_sec(n, whole.cpu),
        &anchor,
        mid,
        None,
    );
}

/// Server side of handshakes with clients it has never seen: every chain
/// goes through full path validation (no chain-cache hit).
fn bench_handshakes_first_contact(ca: &ClusterCa, server: &ServerTls, n: usize) {
    let clients: Vec<ClientTls> = (0..n)
        .map(|_| {
            ClientTlsBuilder::new(credentials(ca, NodeRole::Worker), ca.trust())
                .build()
                .unwrap()
        })
        .collect();
    let mut s_total = Duration::ZERO;
    for client in &clients {
        s_total += handshake_in_memory(server, client).0;
    }
    let (lo, hi) = ANCHOR_HANDSHAKE;
    let anchor = format!("rustls {}-{}k (mid)", lo / 1000.0, hi / 1000.0);
    row(
        "  server side, first contact (chain validated)",
        per_sec(n, s_total),
        &anchor,
        (lo + hi) / 2.0,
        Some(TARGET_HANDSHAKE),
    );
}

fn bench_handshakes_loopback(server: &ServerTls, client: &ClientTls, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (m, done) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = server.incoming(listener);
        let connector = tokio_rustls::TlsConnector::from(client.rustls_config());
        let name = rustls::pki_types::ServerName::try_from("swarm-manager").unwrap();
        let (c0, w0) = (thread_cpu(), Instant::now());
        let mut done = 0;
        for _ in 0..n {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = connector.connect(name.clone(), tcp).await.unwrap();
            // The server side is complete when the listener yields it.
            let accepted = incoming.next().await.unwrap().unwrap();
            assert!(!accepted.peer().certificates().is_empty());
            drop((tls, accepted));
            done += 1;
        }
        (
            Measure {
                cpu: thread_cpu() - c0,
                wall: w0.elapsed(),
            },
            done,
        )
    });
    let (lo, hi) = ANCHOR_HANDSHAKE;
    let anchor = format!("rustls {}-{}k (mid)", lo / 1000.0, hi / 1000.0);
    row(
        "mTLS handshakes per core, loopback TCP, both",
        per_sec(done, m.cpu),
        &anchor,
        (lo + hi) / 2.0,
        None,
    );
    println!(
        "{:<46} {:>10.0}/s wall on one thread",
        "",
        per_sec(done, m.wall)
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 4 };
    let ca = ClusterCa::new("benchcluster", RootCa::generate(SystemTime::now()).unwrap()).unwrap();
    let server = ServerTlsBuilder::new(credentials(&ca, NodeRole::Manager), ca.trust())
        .revocation(Arc::new(swarm_pki::RemovedNodes::new()))
        .build()
        .unwrap();
    let client = ClientTlsBuilder::new(credentials(&ca, NodeRole::Worker), ca.trust())
        .build()
        .unwrap();

    println!(
        "swarm-pki bench (ratios: measured / anchor; per core = per CPU-second of one thread)"
    );
    println!("{}", "-".repeat(120));
    let primitives = bench_primitives(2_000 * scale);
    bench_issue(&ca, 1_000 * scale, primitives);
    // Warm up, then measure.
    for _ in 0..50 {
        handshake_in_memory(&server, &client);
    }
    bench_handshakes_in_memory(&server, &client, 500 * scale);
    bench_handshakes_first_contact(&ca, &server, 250 * scale);
    bench_handshakes_loopback(&server, &client, 500 * scale);
}
