//! Just enough netlink: building messages with nested attributes, parsing
//! answers, and a blocking socket that waits for the kernel's acks.
//! Shared by the nf_tables element writer and the IPVS client.

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr};

use crate::error::{LbError, Result};

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A netlink message under construction: header, family header, attributes.
#[derive(Debug, Clone)]
pub(crate) struct MsgBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MsgBuilder {
    /// A message of `kind` with `flags`; `seq` is set by the socket.
    pub(crate) fn new(kind: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id
        MsgBuilder {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends raw bytes (a family header).
    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Appends an attribute.
    pub(crate) fn attr(mut self, kind: u16, payload: &[u8]) -> Self {
        self.put_attr(kind, payload);
        self
    }

    /// Appends an attribute (by reference).
    pub(crate) fn put_attr(&mut self, kind: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        // Attribute lengths are u16; callers keep payloads small.
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Appends raw bytes (by reference), padded to 4.
    pub(crate) fn put_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// A NUL-terminated string attribute.
    pub(crate) fn str_attr(self, kind: u16, s: &str) -> Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    /// Opens a nested attribute (closed by [`MsgBuilder::end`]).
    pub(crate) fn begin(mut self, kind: u16) -> Self {
        self.put_begin(kind);
        self
    }

    /// Opens a nested attribute (by reference).
    pub(crate) fn put_begin(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    /// Closes the innermost nested attribute.
    pub(crate) fn end(mut self) -> Self {
        self.put_end();
        self
    }

    /// Closes the innermost nested attribute (by reference).
    pub(crate) fn put_end(&mut self) {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The finished message with its sequence number.
    pub(crate) fn finish(mut self, seq: u32) -> Vec<u8> {
        debug_assert!(self.nests.is_empty(), "unclosed nested attribute");
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// One message parsed from the kernel.
#[derive(Debug)]
pub(crate) struct Reply<'a> {
    pub(crate) kind: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

/// Splits a datagram into messages; malformed lengths are an error.
pub(crate) fn parse_messages(mut buf: &[u8]) -> Result<Vec<Reply<'_>>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0)? as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(LbError::Malformed(format!("message length {len}")));
        }
        out.push(Reply {
            kind: u16_at(buf, 4)?,
            seq: u32_at(buf, 8)?,
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

/// Attributes of a payload (after its family header), as (kind, payload).
pub(crate) fn parse_attrs(mut buf: &[u8]) -> Result<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16_at(buf, 0)? as usize;
        if len < 4 || len > buf.len() {
            return Err(LbError::Malformed(format!("attribute length {len}")));
        }
        out.push((u16_at(buf, 2)? & !NLA_F_NESTED, &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_ne_bytes)
        .ok_or_else(|| LbError::Malformed("short u16".into()))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or_else(|| LbError::Malformed("short u32".into()))
}

/// A blocking netlink socket bound in the namespace it was created in.
pub(crate) struct NlSocket {
    sock: Socket,
    seq: u32,
}

impl NlSocket {
    /// Opens a socket of `protocol` in the calling thread's namespace.
    pub(crate) fn open(protocol: isize) -> Result<Self> {
        let ctx = |e: io::Error| LbError::Netlink {
            context: "opening socket".into(),
            source: e,
        };
        let mut sock = Socket::new(protocol).map_err(ctx)?;
        sock.bind_auto().map_err(ctx)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(ctx)?;
        // Errors carry only the header of the failed message, not a copy.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        let sref = socket2::SockRef::from(&sock);
        sref.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(ctx)?;
        let _ = sref.set_send_buffer_size(4 << 20);
        let _ = sref.set_recv_buffer_size(4 << 20);
        Ok(NlSocket { sock, seq: 1 })
    }

    /// Next sequence number.
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends one datagram made of several messages.
    pub(crate) fn send(&self, bytes: &[u8], context: &str) -> Result<()> {
        self.sock.send(bytes, 0).map_err(|e| LbError::Netlink {
            context: context.to_string(),
            source: e,
        })?;
        Ok(())
    }

    /// Receives one datagram.
    pub(crate) fn recv(&self, context: &str) -> Result<Vec<u8>> {
        let (buf, _) = self.sock.recv_from_full().map_err(|e| LbError::Netlink {
            context: format!("{context}: waiting for the kernel"),
            source: e,
        })?;
        Ok(buf)
    }

    /// Waits for the acks of `seqs` (every message sent with `NLM_F_ACK`).
    /// The first error answer wins; an error for `abort_seq` (a rejected
    /// batch) ends the wait at once.
    pub(crate) fn wait_acks(
        &self,
        seqs: &[u32],
        abort_seq: Option<u32>,
        context: &str,
    ) -> Result<()> {
        let mut pending: std::collections::BTreeSet<u32> = seqs.iter().copied().collect();
        let mut first_err: Option<i32> = None;
        while !pending.is_empty() {
            let buf = self.recv(context)?;
            for m in parse_messages(&buf)? {
                // Answers to an earlier, abandoned request are not ours.
                let ours = pending.contains(&m.seq) || Some(m.seq) == abort_seq;
                if m.kind != NLMSG_ERROR || !ours {
                    continue;
                }
                let code = u32_at(m.payload, 0)? as i32;
                if code != 0 && first_err.is_none() {
                    first_err = Some(code);
                }
                if Some(m.seq) == abort_seq && code != 0 {
                    pending.clear();
                    break;
                }
                pending.remove(&m.seq);
            }
        }
        match first_err {
            None => Ok(()),
            Some(code) => Err(LbError::Netlink {
                context: context.to_string(),
                source: io::Error::from_raw_os_error(-code),
            }),
        }
    }

    /// Sends a dump request and collects the payloads of its answers.
    pub(crate) fn dump(&mut self, msg: MsgBuilder, context: &str) -> Result<Vec<(u16, Vec<u8>)>> {
        let seq = self.next_seq();
        self.send(&msg.finish(seq), context)?;
        let mut out = Vec::new();
        loop {
            let buf = self.recv(context)?;
            for m in parse_messages(&buf)? {
                if m.seq != seq {
                    continue;
                }
                match m.kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = u32_at(m.payload, 0)? as i32;
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(LbError::Netlink {
                            context: context.to_string(),
                            source: io::Error::from_raw_os_error(-code),
                        });
                    }
                    k => out.push((k, m.payload.to_vec())),
                }
            }
        }
    }

    /// Sends one request with `NLM_F_ACK` and waits for its answer.
    pub(crate) fn request(&mut self, msg: MsgBuilder, context: &str) -> Result<()> {
        let seq = self.next_seq();
        self.send(&msg.finish(seq), context)?;
        self.wait_acks(&[seq], Some(seq), context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_are_patched_and_padded() {
        let m = MsgBuilder::new(0x10, NLM_F_REQUEST)
            .begin(1)
            .attr(2, &[0xaa])
            .end()
            .finish(7);
        assert_eq!(m.len(), 16 + 4 + 8);
        assert_eq!(u32_at(&m, 0).unwrap(), 28);
        assert_eq!(u32_at(&m, 8).unwrap(), 7);
        assert_eq!(u16_at(&m, 16).unwrap(), 12); // nest length
        assert_eq!(u16_at(&m, 18).unwrap(), 1 | NLA_F_NESTED);
        assert_eq!(&m[20..28], &[5, 0, 2, 0, 0xaa, 0, 0, 0]);
    }

    #[test]
    fn parsers_refuse_bad_lengths() {
        assert!(parse_messages(&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(parse_attrs(&[2, 0, 1, 0]).is_err());
        assert!(parse_attrs(&[9, 0, 1, 0, 1]).is_err());
        assert_eq!(
            parse_attrs(&[5, 0, 1, 0, 9, 0, 0, 0]).unwrap(),
            vec![(1, &[9u8][..])]
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_messages(&bytes);
            let _ = parse_attrs(&bytes);
            let _ = crate::ipvs::parse_service_for_tests(&bytes);
        }
    }
}
