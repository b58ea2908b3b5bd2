//! One WAL record: `len: u32 | crc32c: u32 | index: u64 | payload`, little
//! endian. The checksum covers the index and the payload.

/// Bytes before the payload.
pub(crate) const HEADER: usize = 16;
/// Largest payload accepted when reading (a larger length is garbage).
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Appends a record to `out`.
#[cfg(test)]
pub(crate) fn encode(out: &mut Vec<u8>, index: u64, payload: &[u8]) {
    encode_with(out, index, |out| out.extend_from_slice(payload));
}

/// Appends a record whose payload `write` appends to `out` (no
/// intermediate buffer).
pub(crate) fn encode_with(out: &mut Vec<u8>, index: u64, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    write(out);
    let idx = index.to_le_bytes();
    let payload = &out[start + HEADER..];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&idx), payload);
    // Payloads are bounded by the proposal limit (1.5 MB) far below 4 GiB.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out[start + 8..start + HEADER].copy_from_slice(&idx);
}

/// What is found at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read<'a> {
    /// A whole record with a good checksum.
    Record {
        /// Its log index.
        index: u64,
        /// Its payload.
        payload: &'a [u8],
        /// Offset of the next record.
        next: usize,
    },
    /// The end of the data: no more bytes, or a header of zeros (a
    /// record never starts with one: its length is never zero).
    End,
    /// Fewer bytes than the header or the payload needs: a write that did
    /// not finish.
    Partial,
    /// A whole record whose checksum or length is wrong.
    Bad,
}

/// Reads the record at `offset` of `buf`.
pub(crate) fn read(buf: &[u8], offset: usize) -> Read<'_> {
    let Some(rest) = buf.get(offset..) else {
        return Read::Partial;
    };
    if rest.iter().take(HEADER).all(|b| *b == 0) {
        return Read::End;
    }
    if rest.len() < HEADER {
        return Read::Partial;
    }
    let field = |at: usize| {
        let mut a = [0u8; 4];
        a.copy_from_slice(&rest[at..at + 4]);
        u32::from_le_bytes(a)
    };
    let (len, crc) = (field(0) as usize, field(4));
    if len > MAX_PAYLOAD {
        return Read::Bad;
    }
    let mut idx = [0u8; 8];
    idx.copy_from_slice(&rest[8..16]);
    let Some(payload) = rest.get(HEADER..HEADER + len) else {
        return Read::Partial;
    };
    if crc32c::crc32c_append(crc32c::crc32c(&idx), payload) != crc {
        return Read::Bad;
    }
    Read::Record {
        index: u64::from_le_bytes(idx),
        payload,
        next: offset + HEADER + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, b"hello");
        encode(&mut buf, 8, b"");
        let Read::Record {
            index,
            payload,
            next,
        } = read(&buf, 0)
        else {
            panic!()
        };
        assert_eq!((index, payload), (7, &b"hello"[..]));
        let Read::Record {
            index,
            payload,
            next: end,
        } = read(&buf, next)
        else {
            panic!()
        };
        assert_eq!((index, payload), (8, &b""[..]));
        assert_eq!(read(&buf, end), Read::End);
        for cut in 1..next {
            assert_eq!(read(&buf[..cut], 0), Read::Partial, "cut {cut}");
        }
        for bit in 0..(next * 8) {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(
                    read(&damaged, 0),
                    Read::Record {
                        index: 7,
                        payload: b"hello",
                        ..
                    }
                ),
                "bit {bit} undetected"
            );
        }
        assert_eq!(read(&[0u8; 64], 0), Read::End, "zeroes end the data");
        assert_eq!(read(&[0u8; 5], 0), Read::End);
        let mut zero_len = vec![0u8; 64];
        zero_len[5] = 1;
        assert_eq!(
            read(&zero_len, 0),
            Read::Bad,
            "a damaged header is not an end"
        );
    }
}
