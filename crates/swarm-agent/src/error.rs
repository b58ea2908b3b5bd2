//! Errors of the agent.

use crate::exec::ExecError;
use crate::taskdb::TaskDbError;

/// Why the agent could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The builder was given something unusable.
    #[error("agent configuration: {0}")]
    Config(String),
    /// The join token does not parse.
    #[error("join token: {0}")]
    Token(#[from] swarm_pki::TokenError),
    /// Joining the cluster failed (wrong token, wrong cluster, refused).
    #[error("joining the cluster: {0}")]
    Join(#[from] swarm_pki::JoinError),
    /// No stored certificate and no join token to get one.
    #[error("the node has no certificate in {0} and no join token was given")]
    NotJoined(std::path::PathBuf),
    /// The stored credentials are unusable.
    #[error("stored credentials: {0}")]
    Credentials(#[from] swarm_pki::StorageError),
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] swarm_pki::TlsError),
    /// The local task database failed.
    #[error(transparent)]
    TaskDb(#[from] TaskDbError),
    /// The executor failed to describe the node.
    #[error("executor: {0}")]
    Executor(#[from] ExecError),
}

/// Why one dispatcher session ended (the agent reconnects).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No connection to the manager.
    #[error("connect: {0}")]
    Connect(#[from] swarm_pki::ChannelError),
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] swarm_pki::TlsError),
    /// A call failed or a stream ended with an error.
    #[error("dispatcher: {0}")]
    Rpc(#[from] tonic::Status),
    /// A stream ended.
    #[error("the manager closed the {0} stream")]
    Closed(&'static str),
}
