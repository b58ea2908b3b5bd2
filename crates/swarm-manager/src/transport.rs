//! Manager-to-manager channels over mutual TLS with the manager's own
//! certificate (raft messages, forwarded writes, forwarded joins).

use std::time::Duration;

use swarm_pki::{NodeChannelBuilder, NodeTls};
use swarm_raft::{Connector, TransportError};
use tonic::transport::Channel;

/// A [`Connector`] that opens mTLS channels as this manager.
#[derive(Clone)]
pub struct MtlsConnector {
    tls: NodeTls,
}

impl std::fmt::Debug for MtlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsConnector").finish_non_exhaustive()
    }
}

impl MtlsConnector {
    /// Channels authenticated with `tls` (its certificate is read at every
    /// handshake, so renewals apply to new connections).
    pub fn new(tls: NodeTls) -> Self {
        MtlsConnector { tls }
    }
}

impl Connector for MtlsConnector {
    fn channel(&self, addr: &str) -> Result<Channel, TransportError> {
        let err = |reason: String| TransportError {
            addr: addr.to_string(),
            reason,
        };
        let client = self.tls.client_tls().map_err(|e| err(e.to_string()))?;
        NodeChannelBuilder::new(client)
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy(addr)
            .map_err(|e| err(e.to_string()))
    }
}
