//! Object ids: 128 random bits written as 25 base-36 characters, like
//! SwarmKit's, so ids look familiar to Docker users and sort uniformly.

use rand::RngCore;

/// Length of every id.
pub const ID_LEN: usize = 25;

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A new random id from the thread's cryptographically secure generator.
pub fn new_id() -> String {
    new_id_with(&mut rand::rng())
}

/// A new id from the given generator (inject a seeded one for
/// deterministic tests and simulations).
pub fn new_id_with<R: RngCore + ?Sized>(rng: &mut R) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    encode_base36(u128::from_be_bytes(bytes))
}

/// Writes a 128-bit number as exactly [`ID_LEN`] base-36 digits
/// (36^25 > 2^128, so it always fits).
pub fn encode_base36(mut n: u128) -> String {
    let mut out = [b'0'; ID_LEN];
    for slot in out.iter_mut().rev() {
        // n % 36 < 36, so the index is in range.
        *slot = ALPHABET[(n % 36) as usize];
        n /= 36;
    }
    // Only ASCII digits and letters were written.
    out.iter().map(|b| char::from(*b)).collect()
}

/// True when `s` has the form of an id: 25 lowercase base-36 characters.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ids_are_25_base36_chars() {
        for _ in 0..1000 {
            let id = new_id();
            assert!(is_valid_id(&id), "{id}");
        }
    }

    #[test]
    fn extremes_encode_to_fixed_width() {
        assert_eq!(encode_base36(0), "0".repeat(25));
        assert_eq!(encode_base36(u128::MAX), "f5lxx1zz5pnorynqglhzmsp33");
        assert_eq!(encode_base36(35), format!("{}z", "0".repeat(24)));
    }

    #[test]
    fn seeded_generators_are_deterministic() {
        let a = new_id_with(&mut StdRng::seed_from_u64(7));
        let b = new_id_with(&mut StdRng::seed_from_u64(7));
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_malformed_ids() {
        assert!(!is_valid_id("abc"));
        assert!(!is_valid_id(&"A".repeat(25)));
        assert!(!is_valid_id(&"-".repeat(25)));
    }
}
