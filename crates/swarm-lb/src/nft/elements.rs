//! Element encoding for the skeleton's maps, and the difference between
//! two states of one service as element operations.
//!
//! Keys and data are concatenations of 4-byte registers, as nf_tables
//! stores them: addresses and ports in network order (ports padded to 4
//! bytes), the protocol number in the first byte, the `numgen` slot in
//! host order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::{Backend, Protocol, ServiceState};
use crate::slots;

/// The maps and sets of the skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SetName {
    Vip,
    Published,
    Mesh,
    Vip6,
    Published6,
    Mesh6,
}

impl SetName {
    /// Every set, both families.
    pub(crate) const ALL: [SetName; 6] = [
        SetName::Vip,
        SetName::Published,
        SetName::Mesh,
        SetName::Vip6,
        SetName::Published6,
        SetName::Mesh6,
    ];

    /// Name in its table.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SetName::Vip | SetName::Vip6 => "vip",
            SetName::Published | SetName::Published6 => "published",
            SetName::Mesh | SetName::Mesh6 => "mesh",
        }
    }

    /// True for the sets of the `ip6` table.
    pub(crate) fn is_v6(self) -> bool {
        matches!(self, SetName::Vip6 | SetName::Published6 | SetName::Mesh6)
    }
}

/// One element: key and data bytes (data empty for a set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Elem {
    pub(crate) key: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

fn proto_reg(p: Protocol) -> [u8; 4] {
    [p.number(), 0, 0, 0]
}

fn port_reg(port: u16) -> [u8; 4] {
    let b = port.to_be_bytes();
    [b[0], b[1], 0, 0]
}

fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// All elements a service needs, keyed by (set, key) -> data. Each
/// address family has its own table and its own slot table, computed from
/// the backends of that family.
pub(crate) fn elements(
    state: &ServiceState,
    slot_count: u32,
) -> BTreeMap<(SetName, Vec<u8>), Vec<u8>> {
    let mut out = BTreeMap::new();
    for v6 in [false, true] {
        let (vip_set, pub_set, mesh_set) = if v6 {
            (SetName::Vip6, SetName::Published6, SetName::Mesh6)
        } else {
            (SetName::Vip, SetName::Published, SetName::Mesh)
        };
        let backends: Vec<Backend> = state
            .backends
            .values()
            .filter(|b| b.addr.is_ipv6() == v6)
            .copied()
            .collect();
        let table = slots::assign(&backends, slot_count);
        if let Some(vip) = state.spec.vip.filter(|v| v.is_ipv6() == v6) {
            for (slot, b) in table.iter().enumerate() {
                let mut key = octets(vip);
                key.extend_from_slice(&(slot as u32).to_ne_bytes());
                out.insert((vip_set, key), octets(*b));
            }
        }
        for p in &state.spec.ports {
            let Some(publ) = p.published else { continue };
            if publ.mode.masquerades() {
                let mut key = proto_reg(p.protocol).to_vec();
                key.extend_from_slice(&port_reg(publ.port));
                out.insert((mesh_set, key), Vec::new());
            }
            for (slot, b) in table.iter().enumerate() {
                let mut key = proto_reg(p.protocol).to_vec();
                key.extend_from_slice(&port_reg(publ.port));
                key.extend_from_slice(&(slot as u32).to_ne_bytes());
                let mut data = octets(*b);
                data.extend_from_slice(&port_reg(p.target_port));
                out.insert((pub_set, key), data);
            }
        }
    }
    out
}

/// Element operations turning `old` into `new`: deletions (keys whose
/// data changed or that are gone) and additions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Delta {
    pub(crate) delete: BTreeMap<SetName, BTreeSet<Vec<u8>>>,
    pub(crate) add: BTreeMap<SetName, Vec<Elem>>,
}

impl Delta {
    pub(crate) fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }

    /// Number of element operations.
    pub(crate) fn ops(&self) -> usize {
        self.delete.values().map(BTreeSet::len).sum::<usize>()
            + self.add.values().map(Vec::len).sum::<usize>()
    }
}

/// The delta between two element maps.
pub(crate) fn delta(
    old: &BTreeMap<(SetName, Vec<u8>), Vec<u8>>,
    new: &BTreeMap<(SetName, Vec<u8>), Vec<u8>>,
) -> Delta {
    let mut d = Delta::default();
    for ((set, key), data) in old {
        if new.get(&(*set, key.clone())) != Some(data) {
            d.delete.entry(*set).or_default().insert(key.clone());
        }
    }
    for ((set, key), data) in new {
        if old.get(&(*set, key.clone())) != Some(data) {
            d.add.entry(*set).or_default().push(Elem {
                key: key.clone(),
                data: data.clone(),
            });
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortSpec, PublishMode, Published, ServiceSpec};

    fn svc(backends: &[(u8, u32)]) -> ServiceState {
        ServiceState::new(ServiceSpec {
            id: "s".into(),
            vip: Some(IpAddr::from([10, 0, 0, 5])),
            ports: vec![PortSpec {
                protocol: Protocol::Tcp,
                target_port: 8080,
                published: Some(Published {
                    port: 30080,
                    mode: PublishMode::Ingress,
                }),
            }],
        })
        .with_backends(backends.iter().map(|&(l, w)| Backend {
            addr: IpAddr::from([10, 0, 1, l]),
            weight: w,
        }))
    }

    #[test]
    fn encodes_registers_like_nf_tables() {
        let e = elements(&svc(&[(2, 1)]), 4);
        let key = [10, 0, 0, 5, 0, 0, 0, 0];
        let mut k = key.to_vec();
        k[4..8].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(e.get(&(SetName::Vip, k)), Some(&vec![10, 0, 1, 2]));
        let mut pk = vec![6, 0, 0, 0, 0x75, 0x80, 0, 0];
        pk.extend_from_slice(&3u32.to_ne_bytes());
        assert_eq!(
            e.get(&(SetName::Published, pk)),
            Some(&vec![10, 0, 1, 2, 0x1f, 0x90, 0, 0])
        );
        assert!(e.contains_key(&(SetName::Mesh, vec![6, 0, 0, 0, 0x75, 0x80, 0, 0])));
        assert_eq!(e.len(), 4 + 4 + 2);
    }

    #[test]
    fn removing_one_of_two_backends_rewrites_only_its_slots() {
        let a = elements(&svc(&[(2, 1), (3, 1)]), 8);
        let b = elements(&svc(&[(2, 1)]), 8);
        let d = delta(&a, &b);
        // 4 vip slots + 4 published slots changed data: delete and re-add.
        assert_eq!(d.delete.values().map(BTreeSet::len).sum::<usize>(), 8);
        assert_eq!(d.add.values().map(Vec::len).sum::<usize>(), 8);
        assert!(delta(&a, &a).is_empty());
    }

    #[test]
    fn draining_every_backend_removes_all_slots_but_keeps_mesh_port() {
        let a = elements(&svc(&[(2, 0)]), 8);
        // the mesh port, in both families' tables
        assert_eq!(a.len(), 2);
    }
}
