//! A client channel to a manager's local control socket.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects every request of a channel to one unix socket.
#[derive(Clone)]
struct UnixConnector(PathBuf);

impl tower_service::Service<Uri> for UnixConnector {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) })
    }
}

/// A channel to the control socket at `path` (for generated clients:
/// `ControlClient::new(channel)`).
pub async fn local_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    // The URI is required by the API but unused: every connection goes to
    // the socket.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(UnixConnector(path.to_path_buf()))
        .await
}
