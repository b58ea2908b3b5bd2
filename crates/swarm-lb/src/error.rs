//! The crate's error type.

use std::net::IpAddr;

/// What went wrong while programming a load balancer or serving DNS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LbError {
    /// A service spec or backend is not acceptable; nothing was changed.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The field or object at fault.
        what: &'static str,
        /// Why it was refused.
        why: String,
    },
    /// The service is not known to this load balancer.
    #[error("no service {0:?}")]
    NoService(String),
    /// The backend is not part of the service.
    #[error("service {service:?} has no backend {addr}")]
    NoBackend {
        /// Service id.
        service: String,
        /// Backend address.
        addr: IpAddr,
    },
    /// This backend cannot express what was asked (e.g. IPv6 in the nftables
    /// backend, SCTP in the userspace proxy).
    #[error("{backend} does not support {what}")]
    Unsupported {
        /// Which load balancer backend.
        backend: &'static str,
        /// The missing capability.
        what: String,
    },
    /// The kernel lacks a feature this backend needs (e.g. no IPVS module).
    #[error("the kernel does not offer {0}")]
    KernelFeature(String),
    /// The kernel refused a netlink request.
    #[error("netlink: {context}: {source}")]
    Netlink {
        /// What was being done.
        context: String,
        /// The errno the kernel answered.
        #[source]
        source: std::io::Error,
    },
    /// A netlink answer could not be parsed.
    #[error("malformed netlink answer: {0}")]
    Malformed(String),
    /// The `nft` program failed.
    #[error("nft: {0}")]
    Nft(String),
    /// Entering a network namespace, binding or another system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl LbError {
    /// An [`LbError::Io`] with context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LbError::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`LbError::Invalid`].
    pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        LbError::Invalid {
            what,
            why: why.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = LbError> = std::result::Result<T, E>;
