//! What can go wrong allocating subnets and addresses.

use std::net::IpAddr;

use swarm_api::net::Cidr;

use super::{Family, Owner};

/// An IPAM refusal. Nothing was allocated when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpamError {
    /// A pool definition is unusable.
    #[error("address pool {pool}: {reason}")]
    InvalidPool {
        /// The pool as given.
        pool: String,
        /// Why it is refused.
        reason: String,
    },
    /// Two pools share addresses.
    #[error("address pools {0} and {1} overlap")]
    PoolsOverlap(Cidr, Cidr),
    /// Text that should be a network or an address is not.
    #[error("{field}: {value:?} is not valid: {reason}")]
    BadInput {
        /// Which field.
        field: String,
        /// The text given.
        value: String,
        /// Why.
        reason: String,
    },
    /// A requested subnet has host bits set.
    #[error("subnet {0} has host bits set; did you mean {net}?", net = .0.network())]
    SubnetNotCanonical(Cidr),
    /// A requested subnet is too small to hold a gateway and an endpoint.
    #[error("subnet {0} is too small for a network")]
    SubnetTooSmall(Cidr),
    /// A requested subnet overlaps one already allocated.
    #[error("subnet {subnet} overlaps {existing}, allocated to network {network}")]
    SubnetOverlaps {
        /// The requested subnet.
        subnet: Cidr,
        /// The allocated one it overlaps.
        existing: Cidr,
        /// The network holding it.
        network: String,
    },
    /// A requested subnet is not inside an address pool (it straddles a pool
    /// boundary, or the configuration requires subnets inside pools).
    #[error("subnet {subnet} is outside the address pools ({pools})")]
    SubnetOutsidePool {
        /// The requested subnet.
        subnet: Cidr,
        /// The pools, comma separated.
        pools: String,
    },
    /// Every subnet of every pool of the family is taken.
    #[error("no free /{size} subnet left in the {family} address pools ({pools})")]
    PoolExhausted {
        /// The family asked for.
        family: Family,
        /// Subnet size of the pools.
        size: u8,
        /// The pools, comma separated.
        pools: String,
    },
    /// No pool of the family is configured.
    #[error("no {0} address pool is configured; give the network an explicit {0} subnet")]
    NoPool(Family),
    /// A gateway is not a usable address of its subnet.
    #[error("gateway {gateway} is not usable in {subnet}: {reason}")]
    BadGateway {
        /// The gateway.
        gateway: IpAddr,
        /// Its subnet.
        subnet: Cidr,
        /// Why.
        reason: &'static str,
    },
    /// An allocation range is not inside its subnet.
    #[error("range {range} is not inside subnet {subnet}")]
    BadRange {
        /// The range.
        range: Cidr,
        /// The subnet.
        subnet: Cidr,
    },
    /// A network id is already allocated.
    #[error("network {0} already has subnets allocated")]
    NetworkExists(String),
    /// A network id has no allocation.
    #[error("network {0} has no IPAM allocation")]
    UnknownNetwork(String),
    /// An address is not inside any subnet of the network.
    #[error("address {addr} is outside the subnets of network {network}")]
    AddressOutsideNetwork {
        /// The address.
        addr: IpAddr,
        /// The network.
        network: String,
    },
    /// An address is the network, broadcast, gateway or a reserved address.
    #[error("address {addr} is reserved in network {network} ({what})")]
    AddressReserved {
        /// The address.
        addr: IpAddr,
        /// The network.
        network: String,
        /// Which reservation.
        what: String,
    },
    /// An address already belongs to someone else.
    #[error("address {addr} of network {network} is already allocated to {owner}")]
    AddressInUse {
        /// The address.
        addr: IpAddr,
        /// The network.
        network: String,
        /// Its holder.
        owner: Owner,
    },
    /// The network has no free address left in a family.
    #[error("network {network} has no free {family} address left ({subnets})")]
    NetworkFull {
        /// The network.
        network: String,
        /// The family.
        family: Family,
        /// Its subnets of that family, comma separated.
        subnets: String,
    },
    /// The network has no subnet of the requested address's family.
    #[error("network {network} has no {family} subnet")]
    NoSubnetOfFamily {
        /// The network.
        network: String,
        /// The family.
        family: Family,
    },
}
