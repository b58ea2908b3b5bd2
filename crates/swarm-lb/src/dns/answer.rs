//! The shapes of the precomputed answer table: a name key and its
//! addresses, both stored inside the hash table's bucket in the common
//! case, so that answering a query touches one bucket and no heap
//! allocation behind it (a query's time is mostly cache misses otherwise).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

/// A name's addresses as the record database stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addrs {
    /// One address (a VIP, a task), held inline.
    One(IpAddr),
    /// Any other number of addresses (`tasks.` names, DNS round-robin),
    /// shared.
    Many(Arc<[IpAddr]>),
}

impl Addrs {
    /// From the resolved addresses.
    pub(crate) fn from_vec(v: Vec<IpAddr>) -> Self {
        match v.as_slice() {
            [one] => Addrs::One(*one),
            _ => Addrs::Many(v.into()),
        }
    }

    /// The addresses.
    pub fn as_slice(&self) -> &[IpAddr] {
        match self {
            Addrs::One(a) => std::slice::from_ref(a),
            Addrs::Many(v) => v,
        }
    }
}

/// Names up to this length are held inside the bucket.
const INLINE: usize = 38;

/// A normalised name, inline when short. Hashes and compares as the
/// `str` it holds, so the table is probed with a plain `&str`.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    Inline(u8, [u8; INLINE]),
    Heap(Box<str>),
}

impl Key {
    pub(crate) fn new(name: &str) -> Self {
        let mut buf = [0u8; INLINE];
        match (u8::try_from(name.len()), buf.get_mut(..name.len())) {
            (Ok(len), Some(dst)) => {
                dst.copy_from_slice(name.as_bytes());
                Key::Inline(len, buf)
            }
            _ => Key::Heap(name.into()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Always the bytes of a `str` cut at its end (see `new`): the
            // fallback is unreachable.
            Key::Inline(len, buf) => buf
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            Key::Heap(s) => s,
        }
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_probe_as_str() {
        let long = "a".repeat(INLINE + 1);
        let edge = "b".repeat(INLINE);
        let mut m = HashMap::new();
        for k in ["", "svc1", &edge, &long] {
            m.insert(Key::new(k), k.len());
        }
        assert!(matches!(Key::new(&edge), Key::Inline(..)));
        assert!(matches!(Key::new(&long), Key::Heap(_)));
        for k in ["", "svc1", &edge, &long] {
            assert_eq!(m.get(k), Some(&k.len()), "{k}");
        }
        assert_eq!(m.get("svc"), None);
    }

    #[test]
    fn one_address_is_inline() {
        let a: IpAddr = [10, 0, 0, 1].into();
        assert_eq!(Addrs::from_vec(vec![a]), Addrs::One(a));
        assert_eq!(Addrs::from_vec(vec![a]).as_slice(), &[a]);
        assert!(Addrs::from_vec(vec![]).as_slice().is_empty());
        assert_eq!(Addrs::from_vec(vec![a, a]).as_slice(), &[a, a]);
    }
}
