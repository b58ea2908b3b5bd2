//! The peer table: which remote endpoints exist on which network, and the
//! difference to apply when the control plane sends a new picture.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::driver::{NetworkDriver, Peer};
use crate::error::DriverError;

/// Changes that bring a network's peers to the desired set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerDiff {
    /// Peers to remove (gone, or replaced by a new MAC/VTEP for their address).
    pub remove: Vec<Peer>,
    /// Peers to add.
    pub add: Vec<Peer>,
}

impl PeerDiff {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }
}

/// Remote endpoints per network, as programmed into the driver.
///
/// The agent feeds it every endpoint the manager reports on a network
/// (including this node's own, which are recognised by the node's VTEP and
/// left out); [`PeerTable::sync`] applies only what changed.
#[derive(Debug, Clone)]
pub struct PeerTable {
    local_vteps: BTreeSet<IpAddr>,
    networks: HashMap<String, BTreeMap<IpAddr, Peer>>,
}

impl PeerTable {
    /// A table for the node whose data-path address is `local_vtep`.
    pub fn new(local_vtep: IpAddr) -> PeerTable {
        PeerTable {
            local_vteps: [local_vtep].into(),
            networks: HashMap::new(),
        }
    }

    /// The peers programmed on a network.
    pub fn peers(&self, network_id: &str) -> impl Iterator<Item = &Peer> {
        self.networks
            .get(network_id)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// The changes from the programmed peers of a network to `desired`
    /// (endpoints on this node are ignored). Pure: the table is unchanged.
    pub fn diff(&self, network_id: &str, desired: impl IntoIterator<Item = Peer>) -> PeerDiff {
        let want: BTreeMap<IpAddr, Peer> = desired
            .into_iter()
            .filter(|p| !self.local_vteps.contains(&p.vtep))
            .map(|p| (p.ip, p))
            .collect();
        let empty = BTreeMap::new();
        let have = self.networks.get(network_id).unwrap_or(&empty);
        let mut diff = PeerDiff::default();
        for (ip, p) in have {
            match want.get(ip) {
                Some(w) if w == p => {}
                _ => diff.remove.push(*p),
            }
        }
        for (ip, w) in &want {
            if have.get(ip) != Some(w) {
                diff.add.push(*w);
            }
        }
        diff
    }

    /// Records a diff as applied.
    pub fn apply(&mut self, network_id: &str, diff: &PeerDiff) {
        let m = self.networks.entry(network_id.to_string()).or_default();
        for p in &diff.remove {
            if m.get(&p.ip) == Some(p) {
                m.remove(&p.ip);
            }
        }
        for p in &diff.add {
            m.insert(p.ip, *p);
        }
        if m.is_empty() {
            self.networks.remove(network_id);
        }
    }

    /// Brings a network's peers in the driver to `desired`, applying only
    /// the difference. On an error the table records what was applied
    /// before it, so the next sync retries the rest.
    pub async fn sync(
        &mut self,
        driver: &dyn NetworkDriver,
        network_id: &str,
        desired: impl IntoIterator<Item = Peer>,
    ) -> Result<PeerDiff, DriverError> {
        let diff = self.diff(network_id, desired);
        let mut done = PeerDiff::default();
        let mut result = Ok(());
        for p in &diff.remove {
            if let Err(e) = driver.remove_peer(network_id, p).await {
                result = Err(e);
                break;
            }
            done.remove.push(*p);
        }
        if result.is_ok() {
            for p in &diff.add {
                if let Err(e) = driver.add_peer(network_id, p).await {
                    result = Err(e);
                    break;
                }
                done.add.push(*p);
            }
        }
        self.apply(network_id, &done);
        result.map(|()| diff)
    }

    /// Forgets a network (after deleting it from the driver).
    pub fn forget(&mut self, network_id: &str) {
        self.networks.remove(network_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ip: &str, vtep: &str) -> Peer {
        Peer::new(ip.parse().unwrap(), vtep.parse().unwrap())
    }

    #[test]
    fn diff_table() {
        let mut t = PeerTable::new("192.0.2.1".parse().unwrap());
        let first = vec![
            p("10.0.0.2", "192.0.2.2"),
            p("10.0.0.3", "192.0.2.3"),
            p("10.0.0.4", "192.0.2.1"),
        ];
        let d = t.diff("n", first.clone());
        assert_eq!(
            d.add,
            vec![first[0], first[1]],
            "the local endpoint is left out"
        );
        assert!(d.remove.is_empty());
        t.apply("n", &d);
        assert!(
            t.diff("n", first.clone()).is_empty(),
            "same picture, nothing to do"
        );

        // 10.0.0.3 moved to another node, 10.0.0.2 is gone, 10.0.0.5 is new.
        let second = vec![p("10.0.0.3", "192.0.2.9"), p("10.0.0.5", "192.0.2.2")];
        let d = t.diff("n", second.clone());
        assert_eq!(d.remove, vec![first[0], first[1]]);
        assert_eq!(d.add, second);
        t.apply("n", &d);
        assert_eq!(t.peers("n").copied().collect::<Vec<_>>(), second);
        assert!(t.diff("other", vec![]).is_empty());
    }

    #[tokio::test]
    async fn sync_applies_only_the_difference() {
        use crate::driver::NetworkConfig;
        let driver = crate::noop::NoopDriver::new();
        let cfg = NetworkConfig {
            id: "n".into(),
            vni: 4096,
            subnets: vec![crate::driver::SubnetConfig {
                subnet: "10.0.0.0/24".parse().unwrap(),
                gateway: "10.0.0.1".parse().unwrap(),
            }],
            mtu: None,
        };
        driver.create_network(&cfg).await.unwrap();
        let mut t = PeerTable::new("192.0.2.1".parse().unwrap());
        let d = t
            .sync(&driver, "n", vec![p("10.0.0.2", "192.0.2.2")])
            .await
            .unwrap();
        assert_eq!(d.add.len(), 1);
        let d = t
            .sync(
                &driver,
                "n",
                vec![p("10.0.0.2", "192.0.2.2"), p("10.0.0.3", "192.0.2.3")],
            )
            .await
            .unwrap();
        assert_eq!(d.add, vec![p("10.0.0.3", "192.0.2.3")]);
        assert!(d.remove.is_empty());
        let state = driver.state().await.unwrap();
        assert_eq!(state.networks[0].peers.len(), 2);
        // A peer outside the subnet fails; the table keeps what was applied.
        let err = t.sync(&driver, "n", vec![p("10.9.0.2", "192.0.2.2")]).await;
        assert!(err.is_err());
        assert_eq!(
            t.peers("n").count(),
            0,
            "both removals were applied before the failing add"
        );
    }
}
