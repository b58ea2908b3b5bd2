//! Configuration of the VXLAN driver.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{DriverError, Result};
use crate::netns::DEFAULT_NETNS_DIR;

/// Default prefix of the per-network namespaces (`swov-<vni>`).
pub const DEFAULT_PREFIX: &str = "swov";

/// How the VXLAN driver builds networks on this node. Build it with
/// [`VxlanConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConfig {
    pub(crate) data_path_addr: IpAddr,
    pub(crate) port: u16,
    pub(crate) mtu: u32,
    pub(crate) netns_dir: PathBuf,
    pub(crate) prefix: String,
    pub(crate) host_netns: Option<PathBuf>,
}

impl VxlanConfig {
    /// A builder for a node whose underlay (data-path) address is
    /// `data_path_addr`: the source of its VXLAN packets and the VTEP other
    /// nodes send to.
    pub fn builder(data_path_addr: IpAddr) -> VxlanConfigBuilder {
        VxlanConfigBuilder {
            cfg: VxlanConfig {
                data_path_addr,
                port: swarm_api::defaults::VXLAN_PORT,
                mtu: swarm_api::defaults::OVERLAY_MTU,
                netns_dir: PathBuf::from(DEFAULT_NETNS_DIR),
                prefix: DEFAULT_PREFIX.to_string(),
                host_netns: None,
            },
        }
    }

    /// The data-path address.
    pub fn data_path_addr(&self) -> IpAddr {
        self.data_path_addr
    }

    /// The VXLAN UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The default MTU of overlay interfaces.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Where the per-network namespaces are named.
    pub fn netns_dir(&self) -> &Path {
        &self.netns_dir
    }

    /// Prefix of the per-network namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace playing the host (`None`: the caller's own).
    pub fn host_netns(&self) -> Option<&Path> {
        self.host_netns.as_deref()
    }

    /// The namespace name of the network with `vni`.
    pub fn netns_name(&self, vni: u32) -> String {
        format!("{}-{vni}", self.prefix)
    }

    /// The VNI of a namespace name of ours.
    pub(crate) fn vni_of_name(&self, name: &str) -> Option<u32> {
        let digits = name.strip_prefix(&self.prefix)?.strip_prefix('-')?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return None;
        }
        digits.parse().ok()
    }
}

/// Builder of [`VxlanConfig`].
#[derive(Debug, Clone)]
pub struct VxlanConfigBuilder {
    cfg: VxlanConfig,
}

impl VxlanConfigBuilder {
    /// UDP port of VXLAN (4789 by default).
    pub fn port(mut self, port: u16) -> Self {
        self.cfg.port = port;
        self
    }

    /// MTU of overlay interfaces when the network sets none (1450 by
    /// default: a 1500-byte underlay minus 50 bytes of VXLAN over IPv4).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.cfg.mtu = mtu;
        self
    }

    /// Directory naming the per-network namespaces (`/run/netns`).
    pub fn netns_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cfg.netns_dir = dir.into();
        self
    }

    /// Prefix of the per-network namespace names (`swov`). Everything named
    /// `<prefix>-<vni>` in the directory belongs to this driver: a restarted
    /// driver adopts or removes it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.cfg.prefix = prefix.into();
        self
    }

    /// Run as if the namespace at `path` were the host: the VXLAN sockets
    /// and the underlay live there. Tests use it to simulate several nodes
    /// on one machine.
    pub fn host_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.cfg.host_netns = Some(path.into());
        self
    }

    /// Checks and returns the configuration.
    pub fn build(self) -> Result<VxlanConfig> {
        let c = self.cfg;
        let bad = |m: String| Err(DriverError::Invalid(format!("VXLAN driver: {m}")));
        if c.port == 0 {
            return bad("the VXLAN port cannot be 0".into());
        }
        // IPv6 needs 1280; VXLAN over IPv6 takes 70 bytes off the underlay.
        if !(576..=65535 - 70).contains(&c.mtu) {
            return bad(format!("MTU {} is outside 576..=65465", c.mtu));
        }
        if c.data_path_addr.is_unspecified() || c.data_path_addr.is_multicast() {
            return bad(format!(
                "{} cannot be a data-path address",
                c.data_path_addr
            ));
        }
        let ok = !c.prefix.is_empty()
            && c.prefix.len() <= 32
            && c.prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return bad(format!(
                "namespace prefix {:?} must be 1 to 32 of [A-Za-z0-9_-]",
                c.prefix
            ));
        }
        if !c.netns_dir.is_absolute() {
            return bad(format!(
                "namespace directory {} must be absolute",
                c.netns_dir.display()
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_checks() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let c = VxlanConfig::builder(ip).build().unwrap();
        assert_eq!((c.port(), c.mtu(), c.prefix()), (4789, 1450, "swov"));
        assert_eq!(c.netns_name(4096), "swov-4096");
        assert_eq!(c.vni_of_name("swov-4096"), Some(4096));
        for n in ["swov-", "swov-04096", "swov-x", "other-4096", "swov4096"] {
            assert_eq!(c.vni_of_name(n), None, "{n}");
        }
        assert!(VxlanConfig::builder(ip).port(0).build().is_err());
        assert!(VxlanConfig::builder(ip).mtu(100).build().is_err());
        assert!(VxlanConfig::builder(ip).prefix("a b").build().is_err());
        assert!(VxlanConfig::builder(ip).netns_dir("rel").build().is_err());
        assert!(
            VxlanConfig::builder("0.0.0.0".parse().unwrap())
                .build()
                .is_err()
        );
    }
}
