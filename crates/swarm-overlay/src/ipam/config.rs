//! Address pools and the IPAM configuration.

use swarm_api::net::Cidr;

use super::bits::covers;
use super::{Family, IpamError};

/// A pool subnets are carved from: a base network and the prefix length of
/// the subnets cut from it, e.g. `10.0.0.0/8` in `/24`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AddressPool {
    /// The base network.
    #[serde(with = "crate::serde_cidr")]
    pub base: Cidr,
    /// Prefix length of each subnet cut from it.
    pub subnet_size: u8,
}

impl AddressPool {
    /// A pool, checked: canonical base, subnet size between the base's prefix
    /// and the longest usable prefix of the family.
    pub fn new(base: Cidr, subnet_size: u8) -> Result<AddressPool, IpamError> {
        let bad = |reason: String| IpamError::InvalidPool {
            pool: format!("{base} (subnets /{subnet_size})"),
            reason,
        };
        if !base.is_canonical() {
            return Err(bad(format!(
                "host bits set; did you mean {}?",
                base.network()
            )));
        }
        let family = Family::of_cidr(&base);
        if subnet_size < base.prefix() {
            return Err(bad(format!(
                "subnet size /{subnet_size} is larger than the pool /{}",
                base.prefix()
            )));
        }
        if subnet_size == 0 {
            return Err(bad(
                "a pool must be split into subnets (size at least /1)".into()
            ));
        }
        if subnet_size > family.max_network_prefix() {
            return Err(bad(format!(
                "subnet size /{subnet_size} leaves no room for hosts (at most /{})",
                family.max_network_prefix()
            )));
        }
        Ok(AddressPool { base, subnet_size })
    }

    /// Parses `base` (CIDR text) and checks the pool.
    pub fn parse(base: &str, subnet_size: u8) -> Result<AddressPool, IpamError> {
        let cidr = base.parse::<Cidr>().map_err(|e| IpamError::BadInput {
            field: "address pool".into(),
            value: base.into(),
            reason: e.to_string(),
        })?;
        AddressPool::new(cidr, subnet_size)
    }

    /// The family of the pool.
    pub fn family(&self) -> Family {
        Family::of_cidr(&self.base)
    }

    /// True when `subnet` lies wholly inside the pool.
    pub fn covers(&self, subnet: &Cidr) -> bool {
        covers(&self.base, subnet)
    }
}

/// Where explicitly requested subnets may lie.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExplicitSubnets {
    /// Anywhere that does not straddle a pool boundary (Docker's behaviour:
    /// `--subnet 192.168.5.0/24` is accepted with the default pool).
    #[default]
    Anywhere,
    /// Only inside a configured pool.
    InsidePools,
}

/// The IPAM configuration: pools and policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IpamConfig {
    pools: Vec<AddressPool>,
    explicit: ExplicitSubnets,
}

impl Default for IpamConfig {
    /// SwarmKit's default: `10.0.0.0/8` in `/24`s, no IPv6 pool.
    fn default() -> Self {
        #[allow(
            clippy::expect_used,
            reason = "the default pool is a constant that parses"
        )]
        let base = swarm_api::defaults::ADDRESS_POOL
            .parse::<Cidr>()
            .expect("the default address pool parses");
        IpamConfig {
            pools: vec![AddressPool {
                base,
                subnet_size: swarm_api::defaults::SUBNET_SIZE,
            }],
            explicit: ExplicitSubnets::Anywhere,
        }
    }
}

impl IpamConfig {
    /// A configuration from pools, checked: at least one pool, no two
    /// overlapping.
    pub fn new(
        pools: Vec<AddressPool>,
        explicit: ExplicitSubnets,
    ) -> Result<IpamConfig, IpamError> {
        if pools.is_empty() {
            return Err(IpamError::InvalidPool {
                pool: String::new(),
                reason: "at least one address pool is needed".into(),
            });
        }
        for (i, a) in pools.iter().enumerate() {
            if let Some(b) = pools[i + 1..].iter().find(|b| b.base.overlaps(&a.base)) {
                return Err(IpamError::PoolsOverlap(a.base, b.base));
            }
        }
        Ok(IpamConfig { pools, explicit })
    }

    /// The configuration of a cluster object: its `default_address_pool`
    /// and `subnet_size` (SwarmKit defaults where unset).
    pub fn from_cluster(cluster: &swarm_api::v1::Cluster) -> Result<IpamConfig, IpamError> {
        if cluster.default_address_pool.is_empty() && cluster.subnet_size == 0 {
            return Ok(IpamConfig::default());
        }
        let size = u8::try_from(cluster.subnet_size).map_err(|_| IpamError::BadInput {
            field: "cluster.subnet_size".into(),
            value: cluster.subnet_size.to_string(),
            reason: "not a prefix length".into(),
        })?;
        let size = if size == 0 {
            swarm_api::defaults::SUBNET_SIZE
        } else {
            size
        };
        let mut pools = Vec::new();
        let texts: Vec<&str> = if cluster.default_address_pool.is_empty() {
            vec![swarm_api::defaults::ADDRESS_POOL]
        } else {
            cluster
                .default_address_pool
                .iter()
                .map(String::as_str)
                .collect()
        };
        for text in texts {
            let base = text.parse::<Cidr>().map_err(|e| IpamError::BadInput {
                field: "cluster.default_address_pool".into(),
                value: text.into(),
                reason: e.to_string(),
            })?;
            // The cluster's subnet size is an IPv4 prefix; IPv6 pools get /64s.
            let pool_size = if base.is_ipv6() {
                64.max(base.prefix())
            } else {
                size
            };
            pools.push(AddressPool::new(base, pool_size)?);
        }
        IpamConfig::new(pools, ExplicitSubnets::Anywhere)
    }

    /// Adds a pool (e.g. an IPv6 pool next to the default IPv4 one).
    pub fn with_pool(mut self, pool: AddressPool) -> Result<IpamConfig, IpamError> {
        if let Some(b) = self.pools.iter().find(|b| b.base.overlaps(&pool.base)) {
            return Err(IpamError::PoolsOverlap(pool.base, b.base));
        }
        self.pools.push(pool);
        Ok(self)
    }

    /// Sets where explicit subnets may lie.
    pub fn with_explicit_subnets(mut self, explicit: ExplicitSubnets) -> IpamConfig {
        self.explicit = explicit;
        self
    }

    /// The pools.
    pub fn pools(&self) -> &[AddressPool] {
        &self.pools
    }

    /// Where explicit subnets may lie.
    pub fn explicit_subnets(&self) -> ExplicitSubnets {
        self.explicit
    }

    /// The pools of a family, comma separated, for messages.
    pub(crate) fn describe(&self, family: Family) -> String {
        self.pools
            .iter()
            .filter(|p| p.family() == family)
            .map(|p| p.base.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks an explicit subnet against the pools.
    pub(crate) fn check_explicit(&self, subnet: &Cidr) -> Result<(), IpamError> {
        let family = Family::of_cidr(subnet);
        let inside = self.pools.iter().any(|p| p.covers(subnet));
        let straddles = !inside
            && self
                .pools
                .iter()
                .any(|p| p.base.overlaps(subnet) && !p.covers(subnet));
        if straddles || (!inside && self.explicit == ExplicitSubnets::InsidePools) {
            return Err(IpamError::SubnetOutsidePool {
                subnet: *subnet,
                pools: self.describe(family),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_checks() {
        assert!(AddressPool::parse("10.0.0.0/8", 24).is_ok());
        assert!(AddressPool::parse("10.0.0.1/8", 24).is_err());
        assert!(AddressPool::parse("10.0.0.0/16", 8).is_err());
        assert!(AddressPool::parse("10.0.0.0/8", 31).is_err());
        assert!(AddressPool::parse("fd00::/48", 64).is_ok());
        assert!(AddressPool::parse("nope", 24).is_err());
        let a = AddressPool::parse("10.0.0.0/8", 24).unwrap();
        let b = AddressPool::parse("10.1.0.0/16", 24).unwrap();
        assert!(matches!(
            IpamConfig::new(vec![a, b], ExplicitSubnets::Anywhere),
            Err(IpamError::PoolsOverlap(..))
        ));
        assert!(IpamConfig::new(vec![], ExplicitSubnets::Anywhere).is_err());
    }

    #[test]
    fn from_cluster_object() {
        let mut cluster = swarm_api::v1::Cluster::default();
        assert_eq!(
            IpamConfig::from_cluster(&cluster).unwrap(),
            IpamConfig::default()
        );
        cluster.default_address_pool = vec!["172.20.0.0/16".into(), "fd00:1::/48".into()];
        cluster.subnet_size = 26;
        let cfg = IpamConfig::from_cluster(&cluster).unwrap();
        assert_eq!(cfg.pools()[0].subnet_size, 26);
        assert_eq!(cfg.pools()[1].subnet_size, 64);
        cluster.subnet_size = 300;
        assert!(IpamConfig::from_cluster(&cluster).is_err());
    }

    #[test]
    fn explicit_subnet_policy() {
        let cfg = IpamConfig::default();
        assert!(cfg.check_explicit(&"10.5.0.0/24".parse().unwrap()).is_ok());
        assert!(
            cfg.check_explicit(&"192.168.1.0/24".parse().unwrap())
                .is_ok()
        );
        // Straddles the pool boundary.
        assert!(cfg.check_explicit(&"8.0.0.0/6".parse().unwrap()).is_err());
        let strict = cfg.with_explicit_subnets(ExplicitSubnets::InsidePools);
        assert!(matches!(
            strict.check_explicit(&"192.168.1.0/24".parse().unwrap()),
            Err(IpamError::SubnetOutsidePool { .. })
        ));
    }
}
