//! TCP: accept, pick a backend, splice both directions.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::Type;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::{CONNECT_TIMEOUT, Picker, SocketFactory};

pub(super) async fn serve(
    listener: TcpListener,
    picker: Arc<Picker>,
    factory: SocketFactory,
    port: u16,
) {
    let position = std::sync::atomic::AtomicUsize::new(0);
    loop {
        let client = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                // Out of descriptors and the like: back off instead of
                // spinning, the condition usually clears.
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(backend) = picker.pick(&position) else {
            // No backend: refuse by closing.
            drop(client);
            continue;
        };
        let factory = factory.clone();
        tokio::spawn(async move {
            let Some(mut upstream) = connect(&factory, SocketAddr::new(backend, port)).await else {
                return;
            };
            let mut client = client;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

async fn connect(factory: &SocketFactory, to: SocketAddr) -> Option<TcpStream> {
    let f = factory.clone();
    let sock = tokio::task::spawn_blocking(move || f.outgoing(to.ip(), Type::STREAM))
        .await
        .ok()?
        .ok()?;
    let sock = TcpSocket::from_std_stream(sock.into());
    tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(to))
        .await
        .ok()?
        .ok()
}
