//! nf_tables set-element batches over netlink: what `nft add element`
//! does, minus starting a process and loading its cache (which costs
//! 10–20 ms per call here, more than the whole change budget).

use std::collections::BTreeSet;

use super::elements::{Delta, Elem, SetName};
use crate::error::Result;
use crate::nl::{MsgBuilder, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, NlSocket};

pub(crate) const NETLINK_NETFILTER: isize = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;

/// Largest element list in one message (attribute lengths are u16).
const MAX_LIST_BYTES: usize = 60_000;
/// Largest batch sent in one datagram (stays under the default socket
/// send buffer limit).
const MAX_BATCH_BYTES: usize = 200_000;

/// The family header of nfnetlink: family, version, resource id (BE).
fn nfgen(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

fn elem_msg(table: &str, set: SetName, kind: u16) -> MsgBuilder {
    let flags = NLM_F_REQUEST
        | NLM_F_ACK
        | if kind == NFT_MSG_NEWSETELEM {
            NLM_F_CREATE
        } else {
            0
        };
    MsgBuilder::new((NFNL_SUBSYS_NFTABLES << 8) | kind, flags)
        .raw(&nfgen(
            if set.is_v6() {
                NFPROTO_IPV6
            } else {
                NFPROTO_IPV4
            },
            0,
        ))
        .str_attr(NFTA_SET_ELEM_LIST_TABLE, table)
        .str_attr(NFTA_SET_ELEM_LIST_SET, set.as_str())
}

fn put_elem(m: &mut MsgBuilder, key: &[u8], data: Option<&[u8]>) {
    m.put_begin(NFTA_LIST_ELEM);
    m.put_begin(NFTA_SET_ELEM_KEY);
    m.put_attr(NFTA_DATA_VALUE, key);
    m.put_end();
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        m.put_begin(NFTA_SET_ELEM_DATA);
        m.put_attr(NFTA_DATA_VALUE, d);
        m.put_end();
    }
    m.put_end();
}

/// Builds the messages (without batch framing) for a delta; with `flush`,
/// each set is emptied first.
pub(crate) fn delta_messages(table: &str, delta: &Delta, flush: &[SetName]) -> Vec<MsgBuilder> {
    let mut msgs = Vec::new();
    for set in flush {
        // A DELSETELEM without an element list flushes the set.
        msgs.push(elem_msg(table, *set, NFT_MSG_DELSETELEM));
    }
    for (set, keys) in &delta.delete {
        chunk(
            table,
            *set,
            NFT_MSG_DELSETELEM,
            keys.iter().map(|k| (k.as_slice(), None)),
            &mut msgs,
        );
    }
    for (set, elems) in &delta.add {
        chunk(
            table,
            *set,
            NFT_MSG_NEWSETELEM,
            elems
                .iter()
                .map(|e: &Elem| (e.key.as_slice(), Some(e.data.as_slice()))),
            &mut msgs,
        );
    }
    msgs
}

fn chunk<'a>(
    table: &str,
    set: SetName,
    kind: u16,
    items: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    msgs: &mut Vec<MsgBuilder>,
) {
    let mut cur: Option<(MsgBuilder, usize)> = None;
    for (key, data) in items {
        let (m, start) = cur.get_or_insert_with(|| {
            let mut m = elem_msg(table, set, kind);
            m.put_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
            let start = m.len();
            (m, start)
        });
        put_elem(m, key, data);
        if m.len() - *start > MAX_LIST_BYTES
            && let Some((mut m, _)) = cur.take()
        {
            m.put_end();
            msgs.push(m);
        }
    }
    if let Some((mut m, _)) = cur {
        m.put_end();
        msgs.push(m);
    }
}

/// Sends messages as nf_tables transactions and waits for every ack.
/// Messages that fit go in one batch (one atomic transaction); a larger
/// set (a full reload) is split into several batches.
pub(crate) fn send_batches(
    sock: &mut NlSocket,
    msgs: Vec<MsgBuilder>,
    context: &str,
) -> Result<()> {
    let mut it = msgs.into_iter().peekable();
    while it.peek().is_some() {
        let begin_seq = sock.next_seq();
        let mut buf = MsgBuilder::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST)
            .raw(&nfgen(0, NFNL_SUBSYS_NFTABLES))
            .finish(begin_seq);
        let mut seqs = Vec::new();
        while let Some(m) = it.peek() {
            if !seqs.is_empty() && buf.len() + m.len() > MAX_BATCH_BYTES {
                break;
            }
            let Some(m) = it.next() else { break };
            let seq = sock.next_seq();
            seqs.push(seq);
            buf.extend_from_slice(&m.finish(seq));
        }
        let end_seq = sock.next_seq();
        buf.extend_from_slice(
            &MsgBuilder::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST)
                .raw(&nfgen(0, NFNL_SUBSYS_NFTABLES))
                .finish(end_seq),
        );
        sock.send(&buf, context)?;
        sock.wait_acks(&seqs, Some(begin_seq), context)?;
    }
    Ok(())
}

/// Every set touched by a delta (for logging).
pub(crate) fn touched(delta: &Delta) -> BTreeSet<SetName> {
    delta
        .delete
        .keys()
        .chain(delta.add.keys())
        .copied()
        .collect()
}
