//! Errors of the network drivers and the gateway bridge.

use std::io;
use std::net::IpAddr;

use crate::netns::NetnsError;

/// A driver failure. Operations undo what they did before returning one,
/// so nothing half-created is left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The request itself is wrong (bad name, address outside the network...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No such network on this node.
    #[error("network {0} does not exist on this node")]
    UnknownNetwork(String),
    /// The network still has endpoints.
    #[error("network {network} still has {count} endpoint(s) attached")]
    NetworkInUse {
        /// The network.
        network: String,
        /// How many endpoints.
        count: usize,
    },
    /// Another network on this node has the VNI.
    #[error("VXLAN id {vni} is already used by network {network} on this node")]
    VniInUse {
        /// The VNI.
        vni: u32,
        /// The network holding it.
        network: String,
    },
    /// The network exists with another configuration and cannot be changed
    /// in place.
    #[error("network {network} exists with another configuration: {reason}")]
    NetworkConflict {
        /// The network.
        network: String,
        /// What differs.
        reason: String,
    },
    /// The endpoint is already joined with other settings.
    #[error("endpoint {endpoint} is already joined to network {network} with other settings")]
    EndpointConflict {
        /// The endpoint.
        endpoint: String,
        /// The network.
        network: String,
    },
    /// An interface or namespace name is already taken.
    #[error("{what} {name:?} already exists {place}")]
    NameTaken {
        /// Interface, bridge, namespace...
        what: &'static str,
        /// The name.
        name: String,
        /// Where.
        place: String,
    },
    /// An address is already used on the gateway bridge or elsewhere.
    #[error("address {0} is already in use")]
    AddressInUse(IpAddr),
    /// A netlink request failed.
    #[error("{op}: {source}")]
    Netlink {
        /// What was being done.
        op: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Another system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// Why.
        source: io::Error,
    },
    /// Applying nftables rules failed.
    #[error("{op}: {source}")]
    Nftables {
        /// What was being done.
        op: String,
        /// Why.
        source: nftables::helper::NftablesError,
    },
    /// The address pool of the gateway bridge is exhausted.
    #[error("gateway bridge: {0}")]
    Ipam(#[from] crate::ipam::IpamError),
}

impl DriverError {
    /// The positive errno of a failed netlink request, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            DriverError::Netlink { source, .. } => crate::nl::errno(source),
            _ => None,
        }
    }
}

/// Result of the drivers.
pub type Result<T, E = DriverError> = std::result::Result<T, E>;
