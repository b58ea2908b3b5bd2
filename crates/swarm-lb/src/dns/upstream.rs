//! Forwarding names the swarm does not know to the host's resolvers.
//!
//! Each forwarded query uses its own ephemeral socket (no id collisions
//! between clients), is bounded by a timeout per server, and holds one
//! permit of a semaphore: a dead upstream costs at most `limit` pending
//! forwards and never delays the names answered from the record
//! database, which do not wait on anything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

/// Default time to wait for one upstream server.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of forwards in flight per resolver.
pub const DEFAULT_INFLIGHT: usize = 256;

/// The servers to forward to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

/// Why a forward failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardError {
    /// No upstream is configured.
    NoServer,
    /// Too many forwards in flight.
    Busy,
    /// No server answered in time.
    Timeout,
}

impl Upstreams {
    /// Forward to `servers` in order, waiting `timeout` for each.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        Upstreams {
            servers,
            timeout,
            permits: Arc::new(Semaphore::new(DEFAULT_INFLIGHT)),
        }
    }

    /// The host's servers from the text of `/etc/resolv.conf`
    /// (`nameserver` lines, port 53).
    pub fn from_resolv_conf(text: &str, timeout: Duration) -> Self {
        Self::new(parse_resolv_conf(text), timeout)
    }

    /// The configured servers.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Sends the raw query to each server in turn; the first answer with
    /// the query's id wins.
    pub(crate) async fn forward(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
        if self.servers.is_empty() {
            return Err(ForwardError::NoServer);
        }
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            return Err(ForwardError::Busy);
        };
        for server in &self.servers {
            let attempt = async {
                if tcp {
                    forward_tcp(*server, query).await
                } else {
                    forward_udp(*server, query).await
                }
            };
            if let Ok(Some(answer)) = tokio::time::timeout(self.timeout, attempt).await {
                return Ok(answer);
            }
        }
        Err(ForwardError::Timeout)
    }
}

async fn forward_udp(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let bind: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.ok()?;
        // Ignore stray datagrams that do not answer this query.
        if n >= 12 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

async fn forward_tcp(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(server).await.ok()?;
    let len = u16::try_from(query.len()).ok()?;
    s.write_all(&len.to_be_bytes()).await.ok()?;
    s.write_all(query).await.ok()?;
    let n = s.read_u16().await.ok()? as usize;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.ok()?;
    (n >= 12 && buf[..2] == query[..2]).then_some(buf)
}

/// The `nameserver` addresses of a resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            let addr = words.next()?;
            // Drop a zone index (fe80::1%eth0): it names a host interface.
            let ip: IpAddr = addr.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# comment\nsearch example.org\nnameserver 192.0.2.1\nnameserver  2001:db8::1\nnameserver bogus\noptions ndots:2\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:53".parse().unwrap()
            ]
        );
    }
}
