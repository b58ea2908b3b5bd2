//! Reaching a manager: its local control socket, or its address with a
//! manager certificate (mutual TLS).

use std::path::{Path, PathBuf};
use std::time::Duration;

use swarm_api::v1::control_client::ControlClient;
use swarm_api::v1::logs_client::LogsClient;
use swarm_pki::{CredentialStore, Enrollment, NodeChannelBuilder, NodeTls};
use tonic::transport::Channel;

/// The state directory `swarmd` uses unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/swarmd";

/// The control socket's file name inside a state directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The certificate directory's name inside a state directory.
pub const CERT_DIR_NAME: &str = "certificates";

/// Where to send control requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A manager's local unix socket.
    Socket(PathBuf),
    /// A manager's gRPC address, authenticated with the manager
    /// certificate stored in `cert_dir` (a `swarmd` state directory's
    /// `certificates/`).
    Remote {
        /// `host:port`.
        addr: String,
        /// Directory holding `key.pem`, the certificate chain and roots.
        cert_dir: PathBuf,
    },
}

/// Why no channel could be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The socket could not be reached.
    #[error(
        "cannot reach the control socket {path}: {reason} (is swarmd running? set --socket or SWARM_SOCKET)"
    )]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The transport error.
        reason: String,
    },
    /// The certificate directory holds no usable credentials.
    #[error("certificates in {dir}: {reason}")]
    Certificates {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The manager could not be reached over TLS.
    #[error("cannot reach the manager at {addr}: {reason}")]
    Remote {
        /// The address.
        addr: String,
        /// The transport or TLS error.
        reason: String,
    },
}

/// A channel to the target.
pub async fn channel(target: &Target) -> Result<Channel, ConnectError> {
    match target {
        Target::Socket(path) => swarm_manager::local::local_channel(path)
            .await
            .map_err(|e| ConnectError::Socket {
                path: path.clone(),
                reason: source_chain(&e),
            }),
        Target::Remote { addr, cert_dir } => {
            let tls = node_tls(cert_dir)?;
            let client = tls.client_tls().map_err(|e| ConnectError::Certificates {
                dir: cert_dir.clone(),
                reason: e.to_string(),
            })?;
            NodeChannelBuilder::new(client)
                .connect_timeout(Duration::from_secs(5))
                .connect(addr)
                .await
                .map_err(|e| ConnectError::Remote {
                    addr: addr.clone(),
                    reason: source_chain(&e),
                })
        }
    }
}

fn node_tls(dir: &Path) -> Result<NodeTls, ConnectError> {
    let err = |reason: String| ConnectError::Certificates {
        dir: dir.to_path_buf(),
        reason,
    };
    let stored = CredentialStore::new(dir)
        .load()
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("no node key and certificate there".into()))?;
    NodeTls::new(Enrollment {
        credentials: stored.credentials,
        roots: stored.roots,
    })
    .map_err(|e| err(e.to_string()))
}

/// An error with its sources, `outer: inner: innermost`.
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = inner.source();
    }
    s
}

/// Control and logs clients over one channel.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The control API.
    pub control: ControlClient<Channel>,
    /// Task logs.
    pub logs: LogsClient<Channel>,
}

impl Clients {
    /// Clients connected to `target`.
    pub async fn connect(target: &Target) -> Result<Self, ConnectError> {
        let ch = channel(target).await?;
        Ok(Clients {
            control: ControlClient::new(ch.clone()),
            logs: LogsClient::new(ch),
        })
    }
}
