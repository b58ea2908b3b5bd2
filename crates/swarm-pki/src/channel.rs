//! tonic channels over the cluster's mutual TLS, for any generated client.
//!
//! ```no_run
//! # async fn demo(client_tls: swarm_pki::ClientTls) -> Result<(), Box<dyn std::error::Error>> {
//! use swarm_api::v1::dispatcher_client::DispatcherClient;
//! let channel = swarm_pki::NodeChannelBuilder::new(client_tls)
//!     .connect("127.0.0.1:4242")
//!     .await?;
//! let mut dispatcher = DispatcherClient::new(channel);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use crate::role::MANAGER_SERVER_NAME;
use crate::tls::{ClientTls, TlsError};

/// Why a channel could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The address is not `host:port`.
    #[error("invalid address {0:?}")]
    Address(String),
    /// A configuration error.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Connecting (TCP or TLS) failed.
    #[error("connect: {0}")]
    Connect(#[from] tonic::transport::Error),
}

/// Builds tonic [`Channel`]s to cluster nodes over mTLS.
#[derive(Debug, Clone)]
pub struct NodeChannelBuilder {
    tls: ClientTls,
    server_name: String,
    connect_timeout: Duration,
    timeout: Option<Duration>,
}

impl NodeChannelBuilder {
    /// Channels with `tls`, expecting a manager (server name
    /// `swarm-manager`) on the other side.
    pub fn new(tls: ClientTls) -> Self {
        NodeChannelBuilder {
            tls,
            server_name: MANAGER_SERVER_NAME.to_string(),
            connect_timeout: Duration::from_secs(5),
            timeout: None,
        }
    }

    /// The name the server's certificate must carry: `swarm-manager`
    /// (default) for any manager, a node id for one node in particular.
    pub fn server_name(mut self, name: &str) -> Self {
        self.server_name = name.to_string();
        self
    }

    /// TCP + TLS connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Per-request timeout (default none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn endpoint_and_connector(
        &self,
        addr: &str,
    ) -> Result<(Endpoint, MtlsConnector), ChannelError> {
        let server_name = ServerName::try_from(self.server_name.clone())
            .map_err(|_| TlsError::ServerName(self.server_name.clone()))?;
        // The connector does TLS; the URI only carries the address.
        let mut endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| ChannelError::Address(addr.to_string()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if let Some(t) = self.timeout {
            endpoint = endpoint.timeout(t);
        }
        let connector = MtlsConnector {
            config: self.tls.config.clone(),
            server_name,
        };
        Ok((endpoint, connector))
    }

    /// Connects now to `addr` (`host:port`).
    pub async fn connect(&self, addr: &str) -> Result<Channel, ChannelError> {
        let (endpoint, connector) = self.endpoint_and_connector(addr)?;
        Ok(endpoint.connect_with_connector(connector).await?)
    }

    /// A channel that connects on first use (and reconnects as needed,
    /// each time with the credentials and roots then in force).
    pub fn connect_lazy(&self, addr: &str) -> Result<Channel, ChannelError> {
        let (endpoint, connector) = self.endpoint_and_connector(addr)?;
        Ok(endpoint.connect_with_connector_lazy(connector))
    }
}

/// A tower connector: TCP, then TLS with the node's client config.
#[derive(Clone)]
pub(crate) struct MtlsConnector {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
}

impl MtlsConnector {
    pub(crate) fn with_config(
        config: Arc<ClientConfig>,
        server_name: &str,
    ) -> Result<Self, TlsError> {
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| TlsError::ServerName(server_name.to_string()))?;
        Ok(MtlsConnector {
            config,
            server_name,
        })
    }
}

impl tower_service::Service<Uri> for MtlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = TlsConnector::from(self.config.clone());
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let authority = uri
                .authority()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address in URI"))?
                .as_str()
                .to_string();
            let tcp = TcpStream::connect(authority).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}
