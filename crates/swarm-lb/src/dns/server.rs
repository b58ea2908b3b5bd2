//! One resolver per sandbox: UDP and TCP sockets bound inside the task's
//! namespace (127.0.0.11:53 by default), served by hickory-server on the
//! caller's tokio runtime.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;

use super::handler::SandboxHandler;
use super::records::RecordDb;
use super::upstream::{DEFAULT_TIMEOUT, Upstreams};
use crate::error::{LbError, Result};
use crate::netns::NetNs;

/// Docker's embedded DNS address.
pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Settings of one sandbox's resolver.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// The task's namespace.
    pub netns: NetNs,
    /// Address to listen on inside it.
    pub listen: SocketAddr,
    /// The sandbox's networks, in priority order.
    pub networks: Vec<String>,
    /// Where unknown names go (unless every network is internal).
    pub upstreams: Upstreams,
    /// Idle timeout of TCP clients.
    pub tcp_timeout: Duration,
    /// Listen on `listen` (port 0: any free port) and redirect
    /// 127.0.0.11:53 to it with an nftables table of its own
    /// ([`REDIRECT_TABLE`]), as Docker does: the task keeps port 53 free
    /// for its own servers.
    pub redirect: bool,
}

/// The table holding the port-53 redirect in a sandbox.
pub const REDIRECT_TABLE: &str = "swarm-dns";

impl ResolverConfig {
    /// 127.0.0.11:53 in `netns`, for `networks`, forwarding to `upstreams`.
    pub fn new(netns: NetNs, networks: Vec<String>, upstreams: Vec<SocketAddr>) -> Self {
        ResolverConfig {
            netns,
            listen: SocketAddr::from((RESOLVER_ADDR, 53)),
            networks,
            upstreams: Upstreams::new(upstreams, DEFAULT_TIMEOUT),
            tcp_timeout: Duration::from_secs(5),
            redirect: false,
        }
    }

    /// Listen on a free port of 127.0.0.11 and redirect port 53 to it.
    pub fn with_redirect(mut self) -> Self {
        self.listen = SocketAddr::from((RESOLVER_ADDR, 0));
        self.redirect = true;
        self
    }
}

/// Socket buffer size of the resolver's UDP socket (each way).
pub const UDP_BUFFER: usize = 1 << 20;

/// Room for bursts: with the default ~200 KiB, about 270 queued queries
/// fill the receive buffer and the next ones are dropped (a client then
/// waits seconds to retry); the kernel caps the size at `net.core.rmem_max`
/// / `wmem_max`.
fn size_buffers(udp: &std::net::UdpSocket) -> Result<()> {
    let sock = socket2::SockRef::from(udp);
    sock.set_recv_buffer_size(UDP_BUFFER)
        .map_err(|e| LbError::io("SO_RCVBUF", e))?;
    sock.set_send_buffer_size(UDP_BUFFER)
        .map_err(|e| LbError::io("SO_SNDBUF", e))
}

/// Creates (or replaces) the redirect table: one transaction, whether or
/// not the table existed.
fn redirect_script(port: u16) -> String {
    let t = REDIRECT_TABLE;
    let a = RESOLVER_ADDR;
    format!(
        "table ip {t} {{}}\ndelete table ip {t}\ntable ip {t} {{\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         \t\tip daddr {a} udp dport 53 dnat ip to {a}:{port}\n\
         \t\tip daddr {a} tcp dport 53 dnat ip to {a}:{port}\n\
         \t}}\n}}\n"
    )
}

fn remove_redirect(netns: &NetNs) {
    let _ = netns.run(|| {
        crate::nft::nft_script(&format!(
            "table ip {REDIRECT_TABLE} {{}}\ndelete table ip {REDIRECT_TABLE}\n"
        ))
    });
}

/// A running resolver. Dropping it stops it (the server task is aborted,
/// which closes its sockets and in-flight forwards).
pub struct SandboxResolver {
    handler: SandboxHandler,
    local: SocketAddr,
    redirect: Option<NetNs>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SandboxResolver {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(ns) = self.redirect.take() {
            remove_redirect(&ns);
        }
    }
}

impl SandboxResolver {
    /// Binds the sockets in the sandbox's namespace and starts serving on
    /// the current tokio runtime.
    pub async fn start(db: Arc<RecordDb>, cfg: ResolverConfig) -> Result<Self> {
        let listen = cfg.listen;
        let netns = cfg.netns.clone();
        // Entering the namespace takes a short-lived thread: keep it off
        // the async workers.
        let bound = tokio::task::spawn_blocking(move || {
            netns.run(
                move || -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
                    let udp = std::net::UdpSocket::bind(listen)
                        .map_err(|e| LbError::io(format!("binding udp {listen}"), e))?;
                    // Same port for TCP (an ephemeral UDP port is reused for TCP).
                    let tcp_addr = udp
                        .local_addr()
                        .map_err(|e| LbError::io("udp local address", e))?;
                    let tcp = std::net::TcpListener::bind(tcp_addr)
                        .map_err(|e| LbError::io(format!("binding tcp {tcp_addr}"), e))?;
                    udp.set_nonblocking(true)
                        .map_err(|e| LbError::io("nonblocking", e))?;
                    size_buffers(&udp)?;
                    tcp.set_nonblocking(true)
                        .map_err(|e| LbError::io("nonblocking", e))?;
                    Ok((udp, tcp))
                },
            )
        })
        .await
        .map_err(|e| LbError::io("binding the resolver's sockets", std::io::Error::other(e)))?;
        let (udp, tcp) = bound??;
        let local = udp
            .local_addr()
            .map_err(|e| LbError::io("udp local address", e))?;
        let udp = tokio::net::UdpSocket::from_std(udp)
            .map_err(|e| LbError::io("registering udp socket", e))?;
        let tcp = tokio::net::TcpListener::from_std(tcp)
            .map_err(|e| LbError::io("registering tcp listener", e))?;
        let handler = SandboxHandler::new(db, cfg.networks, cfg.upstreams);
        let mut server = Server::new(handler.clone());
        server.register_socket(udp);
        server.register_listener(tcp, cfg.tcp_timeout, 64 * 1024);
        let task = tokio::spawn(async move {
            if let Err(e) = server.block_until_done().await {
                tracing::warn!(error = %e, "sandbox resolver stopped");
            }
        });
        let redirect = if cfg.redirect {
            let script = redirect_script(local.port());
            let netns = cfg.netns.clone();
            tokio::task::spawn_blocking(move || netns.run(move || crate::nft::nft_script(&script)))
                .await
                .map_err(|e| {
                    LbError::io("installing the port-53 redirect", std::io::Error::other(e))
                })???;
            Some(cfg.netns.clone())
        } else {
            None
        };
        Ok(SandboxResolver {
            handler,
            local,
            redirect,
            task,
        })
    }

    /// Where it listens (inside the sandbox's namespace).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Changes the networks the sandbox's names come from.
    pub fn set_networks(&self, networks: Vec<String>) {
        self.handler.set_networks(networks);
    }

    /// Stops serving; the sockets are closed when this returns.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        if let Some(ns) = self.redirect.take() {
            let _ = tokio::task::spawn_blocking(move || remove_redirect(&ns)).await;
        }
    }
}
