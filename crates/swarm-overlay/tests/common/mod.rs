//! A lab of simulated hosts: namespaces joined by an underlay bridge that
//! lives in a namespace of its own. Everything is uniquely named and
//! removed by drop guards, also when a test fails.

#![allow(dead_code, reason = "each test file uses a part of the lab")]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use swarm_overlay::netns::{Netns, NetnsGuard};

/// True when the kernel-level tests can run here.
pub(crate) fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root (network namespaces, netlink)");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIP {test}: needs iproute2 (`ip`) to build the test underlay");
        return false;
    }
    true
}

/// Runs `ip` and fails loudly.
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call: `<tag><pid base 36><n>`.
pub(crate) fn unique(tag: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{}x{n}", radix36(std::process::id()))
}

fn radix36(mut v: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

/// One simulated node: a namespace with `eth0` on the underlay.
pub(crate) struct Host {
    pub(crate) ns: NetnsGuard,
    pub(crate) addr: Ipv4Addr,
    /// Prefix of the overlay namespaces its driver makes.
    pub(crate) prefix: String,
}

/// The underlay switch and the hosts on it. Hosts are dropped before the
/// switch.
pub(crate) struct Lab {
    pub(crate) hosts: Vec<Host>,
    pub(crate) switch: NetnsGuard,
}

impl Lab {
    /// A switch namespace with bridge `ul0`, and `n` hosts on 198.18.0.0/24
    /// (host i has 198.18.0.(i+1)).
    pub(crate) fn new(n: usize) -> Lab {
        let switch = NetnsGuard::unique("ovt-sw").unwrap();
        let sw = switch.name();
        ip(&["-n", &sw, "link", "add", "ul0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "ul0", "up"]);
        let mut lab = Lab {
            hosts: Vec::new(),
            switch,
        };
        for _ in 0..n {
            lab.add_host();
        }
        lab
    }

    /// Adds a host (or an "outside" machine) to the underlay.
    pub(crate) fn add_host(&mut self) -> &Host {
        let i = self.hosts.len();
        let ns = NetnsGuard::unique("ovt-h").unwrap();
        let sw = self.switch.name();
        let port = format!("p{i}");
        let addr = Ipv4Addr::new(198, 18, 0, (i + 1) as u8);
        // The host end is made directly in the host's namespace.
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
            &ns.name(),
        ]);
        ip(&["-n", &sw, "link", "set", &port, "master", "ul0", "up"]);
        ip(&[
            "-n",
            &ns.name(),
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns.name(), "link", "set", "eth0", "up"]);
        ip(&["-n", &ns.name(), "link", "set", "lo", "up"]);
        self.hosts.push(Host {
            ns,
            addr,
            prefix: unique("ovt"),
        });
        &self.hosts[i]
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Hosts first (their guards remove the overlay leftovers' hosts),
        // then the switch.
        self.hosts.clear();
    }
}

/// Removes every namespace named with `prefix-` (overlay namespaces a
/// failed test may have left).
pub(crate) struct PrefixSweeper(pub(crate) String);

impl Drop for PrefixSweeper {
    fn drop(&mut self) {
        for name in netns_names(&self.0) {
            let _ = swarm_overlay::netns::remove_named(format!("/run/netns/{name}"));
        }
    }
}

/// Names in /run/netns starting with `prefix-`.
pub(crate) fn netns_names(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect()
}

/// Link names of a namespace.
pub(crate) fn links(ns: &Netns) -> Vec<String> {
    let out = ns
        .run(|| {
            Command::new("ip")
                .args(["-o", "link", "show"])
                .output()
                .unwrap()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// True when a UDP socket is bound to `port` in the namespace.
pub(crate) fn udp_port_bound(ns: &Netns, port: u16) -> bool {
    let hex = format!(":{port:04X}");
    ns.run(move || {
        let mut all = String::new();
        for f in ["/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"] {
            all.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
        all.lines().skip(1).any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|local| local.ends_with(&hex))
        })
    })
    .unwrap()
}

/// An echo server on `addr` inside `ns`, for `conns` connections.
pub(crate) fn echo_server(ns: &Netns, addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let listener = ns.run(move || TcpListener::bind(addr)).unwrap().unwrap();
    listener.set_nonblocking(false).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 64];
            let Ok(n) = s.read(&mut buf) else { continue };
            if &buf[..n] == b"quit" {
                return;
            }
            let _ = s.write_all(&buf[..n]);
        }
    })
}

/// Stops an echo server.
pub(crate) fn stop_echo(ns: &Netns, addr: SocketAddr, h: std::thread::JoinHandle<()>) {
    let _ = ns.run(move || {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            let _ = s.write_all(b"quit");
        }
    });
    let _ = h.join();
}

/// Connects from inside `ns` to `to` and checks the echo, within `timeout`.
pub(crate) fn reaches(ns: &Netns, to: SocketAddr, timeout: Duration) -> bool {
    ns.run(move || {
        let Ok(mut s) = TcpStream::connect_timeout(&to, timeout) else {
            return false;
        };
        s.set_read_timeout(Some(timeout)).unwrap();
        if s.write_all(b"ping").is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).is_ok() && &buf == b"ping"
    })
    .unwrap()
}

/// Polls `f` until it is true or `within` passes.
pub(crate) fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A VXLAN packet seen on a wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) outer_src: IpAddr,
    pub(crate) outer_dst: IpAddr,
    pub(crate) udp_dst: u16,
    pub(crate) vni: u32,
    pub(crate) inner_src: Option<IpAddr>,
    pub(crate) inner_dst: Option<IpAddr>,
}

/// A raw packet socket opened inside `ns` (sees every interface of it).
pub(crate) fn capture(ns: &Netns) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockProtocol, SockType, setsockopt, socket, sockopt,
    };
    let fd = ns
        .run(|| {
            socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::EthAll,
            )
        })
        .unwrap()
        .unwrap();
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 200_000),
    )
    .unwrap();
    fd
}

/// Reads packets from a capture socket for up to `within`, returning the
/// UDP packets to `port` parsed as VXLAN.
pub(crate) fn vxlan_packets(fd: &std::os::fd::OwnedFd, port: u16, within: Duration) -> Vec<Seen> {
    use std::os::fd::AsRawFd;
    let end = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        let n = match nix::sys::socket::recv(
            fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(n) => n,
            Err(_) => continue,
        };
        if let Some(s) = parse_vxlan(&buf[..n], port) {
            out.push(s);
        }
    }
    out
}

fn parse_vxlan(f: &[u8], port: u16) -> Option<Seen> {
    // Ethernet, IPv4 (no VLAN), UDP.
    if f.len() < 14 + 20 + 8 + 8 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 17 || ip.len() < ihl + 16 {
        return None;
    }
    let src = IpAddr::from([ip[12], ip[13], ip[14], ip[15]]);
    let dst = IpAddr::from([ip[16], ip[17], ip[18], ip[19]]);
    let udp = &ip[ihl..];
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    if dport != port {
        return None;
    }
    let vx = &udp[8..];
    let vni = u32::from_be_bytes([0, vx[4], vx[5], vx[6]]);
    let inner = &vx[8..];
    let (mut isrc, mut idst) = (None, None);
    if inner.len() >= 34 && inner[12..14] == [0x08, 0x00] {
        let i = &inner[14..];
        isrc = Some(IpAddr::from([i[12], i[13], i[14], i[15]]));
        idst = Some(IpAddr::from([i[16], i[17], i[18], i[19]]));
    }
    Some(Seen {
        outer_src: src,
        outer_dst: dst,
        udp_dst: dport,
        vni,
        inner_src: isrc,
        inner_dst: idst,
    })
}
