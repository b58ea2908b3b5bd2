//! UDP: one flow per client address, pinned to one backend until idle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use socket2::Type;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::{Picker, SocketFactory, UDP_IDLE};

struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
}

pub(super) async fn serve(sock: UdpSocket, picker: Arc<Picker>, factory: SocketFactory, port: u16) {
    let position = std::sync::atomic::AtomicUsize::new(0);
    let sock = Arc::new(sock);
    let flows: Arc<Mutex<HashMap<SocketAddr, Flow>>> = Arc::default();
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, client) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "proxy udp receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let existing = flows
            .lock()
            .get(&client)
            .map(|f| (f.upstream.clone(), f.last.clone()));
        let (upstream, last) = match existing {
            Some(x) => x,
            None => {
                let Some(backend) = picker.pick(&position) else {
                    continue;
                };
                let to = SocketAddr::new(backend, port);
                let f = factory.clone();
                let Ok(Ok(s)) =
                    tokio::task::spawn_blocking(move || f.outgoing(to.ip(), Type::DGRAM)).await
                else {
                    continue;
                };
                let Ok(up) = UdpSocket::from_std(s.into()) else {
                    continue;
                };
                if up.connect(to).await.is_err() {
                    continue;
                }
                let up = Arc::new(up);
                let last = Arc::new(Mutex::new(Instant::now()));
                flows.lock().insert(
                    client,
                    Flow {
                        upstream: up.clone(),
                        last: last.clone(),
                    },
                );
                tokio::spawn(replies(
                    up.clone(),
                    sock.clone(),
                    client,
                    last.clone(),
                    flows.clone(),
                ));
                (up, last)
            }
        };
        *last.lock() = Instant::now();
        let _ = upstream.send(&buf[..n]).await;
    }
}

/// Copies a backend's replies to the client until the flow is idle.
async fn replies(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<Mutex<Instant>>,
    flows: Arc<Mutex<HashMap<SocketAddr, Flow>>>,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        let deadline = *last.lock() + UDP_IDLE;
        match tokio::time::timeout_at(deadline, upstream.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                *last.lock() = Instant::now();
                let _ = listener.send_to(&buf[..n], client).await;
            }
            Ok(Err(_)) => break,
            Err(_) => {
                if Instant::now() >= *last.lock() + UDP_IDLE {
                    break;
                }
            }
        }
    }
    flows.lock().remove(&client);
}
