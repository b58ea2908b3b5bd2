//! Namespaces, links and tiny servers for the kernel tests. Every name
//! includes the pid and a counter; guards remove what they made even when
//! a test fails.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use swarm_lb::NetNs;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// True when the tests can create namespaces (root with `ip`).
pub fn can_run() -> bool {
    let ok = is_root()
        && Command::new("ip").arg("-V").output().is_ok()
        && Command::new("nft").arg("-v").output().is_ok();
    if !ok {
        eprintln!("skipping: needs root, iproute2 and nftables (bash scripts/setup)");
    }
    ok
}

pub fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace removed on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(tag: &str) -> Ns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("lbt-{tag}-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn netns(&self) -> NetNs {
        NetNs::named(&self.name)
    }

    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v);
    }

    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn forwarding(&self) {
        let out = self.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        assert!(out.status.success());
    }

    /// A hub: a bridge `br0` in this namespace.
    pub fn bridge(&self) {
        self.ip(&["link", "add", "br0", "type", "bridge"]);
        self.ip(&["link", "set", "br0", "up"]);
    }

    /// Connects `other` to this hub's bridge: `ifname` in `other` with `cidr`.
    pub fn attach(&self, other: &Ns, ifname: &str, cidr: &str) {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let port = format!("p{n}");
        self.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            &other.name,
        ]);
        self.ip(&["link", "set", &port, "master", "br0", "up"]);
        other.ip(&["link", "set", ifname, "up"]);
        other.addr(ifname, cidr);
    }

    /// Adds an address (IPv6 without duplicate detection, usable at once).
    pub fn addr(&self, ifname: &str, cidr: &str) {
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", ifname, "nodad"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", ifname]);
        }
    }

    /// A point-to-point link: `a_if` here with `a_cidr`, `b_if` in `other`.
    pub fn link(&self, a_if: &str, a_cidr: &str, other: &Ns, b_if: &str, b_cidr: &str) {
        self.ip(&[
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            &other.name,
        ]);
        self.ip(&["addr", "add", a_cidr, "dev", a_if]);
        self.ip(&["link", "set", a_if, "up"]);
        other.ip(&["addr", "add", b_cidr, "dev", b_if]);
        other.ip(&["link", "set", b_if, "up"]);
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A TCP server in `ns` that writes `"<name> <peer ip>\n"` to every client,
/// then echoes what it receives. Runs on a thread until the namespace goes.
pub fn tcp_server(ns: &Ns, addr: SocketAddr, name: &str) {
    let l = ns.netns().run(|| TcpListener::bind(addr)).unwrap().unwrap();
    let name = name.to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let name = name.clone();
            std::thread::spawn(move || {
                let peer = c
                    .peer_addr()
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default();
                let _ = c.write_all(format!("{name} {peer}\n").as_bytes());
                let mut buf = [0u8; 512];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// A UDP server in `ns` answering every datagram with its name.
pub fn udp_server(ns: &Ns, addr: SocketAddr, name: &str) {
    let s = ns.netns().run(|| UdpSocket::bind(addr)).unwrap().unwrap();
    let name = name.to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(name.as_bytes(), from);
        }
    });
}

/// Connects from `ns` and returns the greeting line: (server name, the peer
/// address the server saw).
pub fn greet(ns: &Ns, to: SocketAddr) -> Option<(String, String)> {
    let s = connect(ns, to)?;
    read_greeting(s).map(|(n, p, _)| (n, p))
}

pub fn connect(ns: &Ns, to: SocketAddr) -> Option<TcpStream> {
    ns.netns()
        .run(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok())
        .unwrap()
}

pub fn read_greeting(mut s: TcpStream) -> Option<(String, String, TcpStream)> {
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).ok()? == 1 {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    let line = String::from_utf8(line).ok()?;
    let (name, peer) = line.split_once(' ')?;
    Some((name.to_string(), peer.to_string(), s))
}

/// Sends one datagram from a fresh socket in `ns`; the reply.
pub fn udp_ask(ns: &Ns, to: SocketAddr) -> Option<String> {
    ns.netns()
        .run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.send_to(b"hi", to).ok()?;
            let mut buf = [0u8; 512];
            let (n, _) = s.recv_from(&mut buf).ok()?;
            Some(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
        .unwrap()
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// True when running as root (owner of this process).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
