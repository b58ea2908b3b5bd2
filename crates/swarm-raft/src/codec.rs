//! Binary encoding of log entries and raft messages.
//!
//! Log entries are framed by hand (log id, kind, payload); the store
//! change a normal entry carries is protobuf. Rarer messages (votes,
//! responses, membership, snapshot metadata) are JSON. Decoding untrusted
//! bytes never panics: every shortfall is a [`CodecError`].

use openraft::{EntryPayload, Membership};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{Entry, LogId, Member, NodeId, Proposal, TypeConfig, Vote};

/// Bytes that do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended early.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// An unknown tag or a malformed field.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Appends fixed-width fields.
#[derive(Default)]
pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        // Lengths of single fields stay far below 4 GiB (proposals are
        // limited to 1.5 MB); saturate rather than wrap if one ever is not.
        self.0
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.0.extend_from_slice(b);
    }
    pub(crate) fn log_id(&mut self, id: &LogId) {
        self.u64(id.leader_id.term);
        self.u64(id.leader_id.node_id);
        self.u64(id.index);
    }
    pub(crate) fn opt_log_id(&mut self, id: Option<&LogId>) {
        match id {
            None => self.u8(0),
            Some(id) => {
                self.u8(1);
                self.log_id(id);
            }
        }
    }
}

/// Reads fixed-width fields, refusing to read past the end.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Dec { buf }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let b = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        let len =
            usize::try_from(u32::from_le_bytes(a)).map_err(|_| CodecError::Truncated(what))?;
        self.take(len, what)
    }
    pub(crate) fn log_id(&mut self) -> Result<LogId, CodecError> {
        let term = self.u64("log id term")?;
        let node_id = self.u64("log id node")?;
        let index = self.u64("log id index")?;
        Ok(LogId::new(
            openraft::CommittedLeaderId::new(term, node_id),
            index,
        ))
    }
    pub(crate) fn opt_log_id(&mut self) -> Result<Option<LogId>, CodecError> {
        match self.u8("log id tag")? {
            0 => Ok(None),
            1 => self.log_id().map(Some),
            t => Err(CodecError::Malformed {
                what: "log id tag",
                detail: t.to_string(),
            }),
        }
    }
}

const BLANK: u8 = 0;
const NORMAL: u8 = 1;
const MEMBERSHIP: u8 = 2;

/// Appends one entry.
pub(crate) fn encode_entry(enc: &mut Enc, e: &Entry) {
    enc.log_id(&e.log_id);
    match &e.payload {
        EntryPayload::Blank => enc.u8(BLANK),
        EntryPayload::Normal(p) => {
            enc.u8(NORMAL);
            enc.bytes(p.encoded());
        }
        EntryPayload::Membership(m) => {
            enc.u8(MEMBERSHIP);
            enc.bytes(&json(m));
        }
    }
}

/// Reads one entry.
pub(crate) fn decode_entry(dec: &mut Dec<'_>) -> Result<Entry, CodecError> {
    let log_id = dec.log_id()?;
    let payload = match dec.u8("entry kind")? {
        BLANK => EntryPayload::Blank,
        NORMAL => {
            let b = dec.bytes("entry payload")?;
            let p = Proposal::decode(b).map_err(|e| CodecError::Malformed {
                what: "store change",
                detail: e.to_string(),
            })?;
            EntryPayload::Normal(p)
        }
        MEMBERSHIP => {
            let m: Membership<NodeId, Member> = from_json(dec.bytes("membership")?, "membership")?;
            EntryPayload::Membership(m)
        }
        k => {
            return Err(CodecError::Malformed {
                what: "entry kind",
                detail: k.to_string(),
            });
        }
    };
    Ok(Entry { log_id, payload })
}

/// Appends one entry to `out` (the WAL record payload).
pub(crate) fn encode_entry_to(out: &mut Vec<u8>, e: &Entry) {
    let mut enc = Enc(std::mem::take(out));
    encode_entry(&mut enc, e);
    *out = enc.0;
}

/// About how many bytes an entry encodes to (to size buffers).
pub(crate) fn size_hint(e: &Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(p) => 64 + p.encoded().len(),
        _ => 256,
    }
}

/// One entry as bytes (the WAL record payload).
pub fn entry_to_bytes(e: &Entry) -> Vec<u8> {
    let mut enc = Enc::default();
    encode_entry(&mut enc, e);
    enc.0
}

/// An entry from bytes; trailing bytes are an error.
pub fn entry_from_bytes(b: &[u8]) -> Result<Entry, CodecError> {
    let mut dec = Dec::new(b);
    let e = decode_entry(&mut dec)?;
    if !dec.is_empty() {
        return Err(CodecError::Malformed {
            what: "entry",
            detail: "trailing bytes".into(),
        });
    }
    Ok(e)
}

/// An append-entries request: vote, previous log id, entries, commit.
pub(crate) fn encode_append(req: &openraft::raft::AppendEntriesRequest<TypeConfig>) -> Vec<u8> {
    let mut enc = Enc(Vec::with_capacity(
        256 + req.entries.iter().map(size_hint).sum::<usize>(),
    ));
    enc.bytes(&json(&req.vote));
    enc.opt_log_id(req.prev_log_id.as_ref());
    enc.opt_log_id(req.leader_commit.as_ref());
    enc.u64(req.entries.len() as u64);
    for e in &req.entries {
        encode_entry(&mut enc, e);
    }
    enc.0
}

pub(crate) fn decode_append(
    b: &[u8],
) -> Result<openraft::raft::AppendEntriesRequest<TypeConfig>, CodecError> {
    let mut dec = Dec::new(b);
    let vote: Vote = from_json(dec.bytes("vote")?, "vote")?;
    let prev_log_id = dec.opt_log_id()?;
    let leader_commit = dec.opt_log_id()?;
    let n = dec.u64("entry count")?;
    // Each entry takes at least 25 bytes: a count beyond that is garbage,
    // not a reason to allocate.
    let cap = usize::try_from(n)
        .ok()
        .filter(|n| *n <= b.len() / 25 + 1)
        .ok_or(CodecError::Malformed {
            what: "entry count",
            detail: n.to_string(),
        })?;
    let mut entries = Vec::with_capacity(cap);
    for _ in 0..n {
        entries.push(decode_entry(&mut dec)?);
    }
    Ok(openraft::raft::AppendEntriesRequest {
        vote,
        prev_log_id,
        leader_commit,
        entries,
    })
}

/// JSON bytes of a serde value. Serialising our own plain types cannot fail.
pub(crate) fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub(crate) fn from_json<T: DeserializeOwned>(
    b: &[u8],
    what: &'static str,
) -> Result<T, CodecError> {
    serde_json::from_slice(b).map_err(|e| CodecError::Malformed {
        what,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use swarm_api::v1::StoreActionBatch;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(term, 7), index)
    }

    #[test]
    fn entries_round_trip() {
        let entries = vec![
            Entry {
                log_id: id(1, 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: id(1, 2),
                payload: EntryPayload::Normal(Proposal::new(StoreActionBatch::default())),
            },
            Entry {
                log_id: id(2, 3),
                payload: EntryPayload::Membership(Membership::new(
                    vec![BTreeSet::from([1, 2])],
                    std::collections::BTreeMap::from([
                        (1, Member { addr: "a:1".into() }),
                        (2, Member { addr: "b:2".into() }),
                    ]),
                )),
            },
        ];
        for e in &entries {
            let b = entry_to_bytes(e);
            assert_eq!(&entry_from_bytes(&b).unwrap(), e);
            for cut in 0..b.len() {
                assert!(entry_from_bytes(&b[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn append_requests_round_trip_and_refuse_garbage() {
        let req = openraft::raft::AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 7),
            prev_log_id: Some(id(2, 9)),
            leader_commit: None,
            entries: vec![Entry {
                log_id: id(3, 10),
                payload: EntryPayload::Blank,
            }],
        };
        let b = encode_append(&req);
        let back = decode_append(&b).unwrap();
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.entries, req.entries);
        let mut huge = b.clone();
        let count_at = b.len() - 25 - 8;
        huge[count_at..count_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_append(&huge).is_err());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..300 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 7;
                    seed ^= seed >> 9;
                    seed as u8
                })
                .collect();
            let _ = decode_append(&junk);
            let _ = entry_from_bytes(&junk);
        }
    }
}

/// The fields of a snapshot chunk other than its data.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChunkHeader {
    vote: Vote,
    meta: crate::types::SnapshotMeta,
    offset: u64,
    done: bool,
}

/// A snapshot chunk: JSON header, then the raw data.
pub(crate) fn encode_snapshot_chunk(
    req: &openraft::raft::InstallSnapshotRequest<TypeConfig>,
) -> Vec<u8> {
    let mut enc = Enc::default();
    enc.bytes(&json(&ChunkHeader {
        vote: req.vote,
        meta: req.meta.clone(),
        offset: req.offset,
        done: req.done,
    }));
    enc.bytes(&req.data);
    enc.0
}

pub(crate) fn decode_snapshot_chunk(
    b: &[u8],
) -> Result<openraft::raft::InstallSnapshotRequest<TypeConfig>, CodecError> {
    let mut dec = Dec::new(b);
    let h: ChunkHeader = from_json(dec.bytes("chunk header")?, "chunk header")?;
    let data = dec.bytes("chunk data")?.to_vec();
    Ok(openraft::raft::InstallSnapshotRequest {
        vote: h.vote,
        meta: h.meta,
        offset: h.offset,
        data,
        done: h.done,
    })
}
