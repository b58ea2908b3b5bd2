//! Fixed-width base-36 numbers, as SwarmKit writes the parts of a join
//! token: a big-endian byte string read as one unsigned number, written in
//! lowercase base 36 and left-padded with `0` to a fixed width.

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Writes `bytes` (a big-endian unsigned number) as exactly `width` base-36
/// digits. Returns `None` when the number does not fit in `width` digits.
pub(crate) fn encode(bytes: &[u8], width: usize) -> Option<String> {
    let mut num = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[usize::from(div_small(&mut num, 36))];
    }
    if num.iter().any(|b| *b != 0) {
        return None;
    }
    // Only ASCII digits and letters were written.
    Some(digits.into_iter().map(char::from).collect())
}

/// Reads `text` as a base-36 number (lowercase digits only) into exactly
/// `N` big-endian bytes. `None` for any other character or when the number
/// needs more than `N` bytes.
pub(crate) fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    for c in text.bytes() {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        };
        // out = out * 36 + digit, refusing overflow.
        let mut carry = u16::from(digit);
        for byte in out.iter_mut().rev() {
            let v = u16::from(*byte) * 36 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// Divides the big-endian number in `num` by `d` in place, returning the
/// remainder.
fn div_small(num: &mut [u8], d: u8) -> u8 {
    let mut rem: u16 = 0;
    for byte in num.iter_mut() {
        let cur = (rem << 8) | u16::from(*byte);
        *byte = (cur / u16::from(d)) as u8;
        rem = cur % u16::from(d);
    }
    rem as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_the_id_encoding_of_swarm_api() {
        let n: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        assert_eq!(
            encode(&n.to_be_bytes(), 25).unwrap(),
            swarm_api::id::encode_base36(n)
        );
        assert_eq!(
            encode(&u128::MAX.to_be_bytes(), 25).unwrap(),
            "f5lxx1zz5pnorynqglhzmsp33"
        );
    }

    #[test]
    fn a_sha256_fits_in_50_digits() {
        let max = [0xffu8; 32];
        let text = encode(&max, 50).unwrap();
        assert_eq!(text.len(), 50);
        assert_eq!(decode::<32>(&text), Some(max));
        assert_eq!(encode(&max, 49), None);
    }

    #[test]
    fn decode_refuses_overflow_and_foreign_characters() {
        // 36^25 - 1 > 2^128 - 1: the largest 25-digit number overflows.
        assert_eq!(decode::<16>(&"z".repeat(25)), None);
        assert_eq!(decode::<16>("ABC"), None);
        assert_eq!(decode::<16>("a-b"), None);
        assert_eq!(decode::<16>(""), Some([0; 16]));
    }

    proptest! {
        #[test]
        fn round_trips(bytes in any::<[u8; 32]>()) {
            let text = encode(&bytes, 50).unwrap();
            prop_assert_eq!(decode::<32>(&text), Some(bytes));
        }
    }
}
