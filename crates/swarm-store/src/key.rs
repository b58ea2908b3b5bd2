//! Index keys: object ids and index values, stored inline when short (ids
//! are 25 bytes), so that copying a B-tree node on write is a plain memory
//! copy rather than a reference-count update per key.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

const INLINE: usize = 30;

/// A string key ordered and compared by its bytes.
#[derive(Clone)]
pub(crate) enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Arc<[u8]>),
}

impl Key {
    pub(crate) fn new(s: &str) -> Key {
        let b = s.as_bytes();
        if b.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..b.len()].copy_from_slice(b);
            // len <= INLINE = 30 fits in u8.
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(Arc::from(b))
        }
    }

    /// The key of `s` lowercased (names are indexed case-insensitively),
    /// without an intermediate `String` for short ASCII names.
    pub(crate) fn lowercase(s: &str) -> Key {
        let b = s.as_bytes();
        if b.len() <= INLINE && s.is_ascii() {
            let mut bytes = [0u8; INLINE];
            for (to, from) in bytes.iter_mut().zip(b) {
                *to = from.to_ascii_lowercase();
            }
            // len <= INLINE = 30 fits in u8.
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Key::new(&s.to_lowercase())
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Key::Inline { len: a, bytes: x }, Key::Inline { len: b, bytes: y }) => {
                a == b && x == y
            }
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Byte order of the strings. Two inline keys compare as fixed-size
    /// arrays (zero-padded) and then by length, which is the same order
    /// and needs no slicing: `"a" < "a\0" < "a\0b" < "ab"`.
    #[inline(always)]
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Inline { len: a, bytes: x }, Key::Inline { len: b, bytes: y }) => {
                cmp_inline(x, y).then(a.cmp(b))
            }
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

/// Byte order of two zero-padded inline keys: the first differing
/// big-endian word decides (no call into `memcmp`). Random ids mostly
/// differ in the first word; equal keys (ids sharing an index key) are
/// recognised with one wide comparison.
#[inline(always)]
fn cmp_inline(x: &[u8; INLINE], y: &[u8; INLINE]) -> Ordering {
    let (a, b) = (word(x, 0), word(y, 0));
    if a != b {
        return a.cmp(&b);
    }
    if x == y {
        return Ordering::Equal;
    }
    for from in [8, 16, 24] {
        let (a, b) = (word(x, from), word(y, from));
        if a != b {
            return a.cmp(&b);
        }
    }
    Ordering::Equal
}

/// Bytes `from..from + 8` (zero-padded past the end) as a big-endian word.
#[inline(always)]
fn word(b: &[u8; INLINE], from: usize) -> u64 {
    let mut w = [0u8; 8];
    let to = (from + 8).min(INLINE);
    w[..to - from].copy_from_slice(&b[from..to]);
    u64::from_be_bytes(w)
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Keys of any length (inline or not), over an alphabet with NUL and
        /// bytes on both sides of every word boundary, order like strings.
        #[test]
        fn any_keys_order_like_their_strings(
            x in "[\\x00a-c\u{e9}]{0,40}",
            y in "[\\x00a-c\u{e9}]{0,40}",
        ) {
            prop_assert_eq!(Key::new(&x).cmp(&Key::new(&y)), x.cmp(&y));
            prop_assert_eq!(Key::new(&x) == Key::new(&y), x == y);
            let common: String = x.chars().take(20).collect();
            let (a, b) = (format!("{common}{y}"), format!("{common}{x}"));
            prop_assert_eq!(Key::new(&a).cmp(&Key::new(&b)), a.cmp(&b));
        }
    }

    #[test]
    fn keys_order_like_their_strings() {
        let words = [
            "",
            "a",
            "ab",
            "b",
            "abcdefghijklmnopqrstuvwxyz0123",
            "abcdefghijklmnopqrstuvwxyz01234567",
            "é",
        ];
        for x in words {
            for y in words {
                assert_eq!(Key::new(x).cmp(&Key::new(y)), x.cmp(y), "{x:?} vs {y:?}");
                assert_eq!(Key::new(x) == Key::new(y), x == y);
            }
            assert_eq!(Key::new(x).as_bytes(), x.as_bytes());
            assert_eq!(Key::lowercase(x), Key::new(&x.to_lowercase()));
            let upper = x.to_uppercase();
            assert_eq!(Key::lowercase(&upper), Key::new(&upper.to_lowercase()));
        }
    }
}
