//! The request handler of one sandbox's resolver.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol as DnsProtocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::PTR;
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use parking_lot::RwLock;
use rand::seq::SliceRandom;

use super::records::RecordDb;
use super::upstream::Upstreams;

/// TTL of the swarm's own answers (Docker's value).
pub const TTL: u32 = 600;

/// Answers one sandbox's queries from the shared [`RecordDb`], scoped to
/// the sandbox's networks, and forwards the rest when allowed.
#[derive(Debug, Clone)]
pub struct SandboxHandler {
    db: Arc<RecordDb>,
    networks: Arc<RwLock<Arc<Vec<String>>>>,
    upstreams: Upstreams,
}

impl SandboxHandler {
    /// A handler for a sandbox attached to `networks` (in priority order).
    pub fn new(db: Arc<RecordDb>, networks: Vec<String>, upstreams: Upstreams) -> Self {
        SandboxHandler {
            db,
            networks: Arc::new(RwLock::new(Arc::new(networks))),
            upstreams,
        }
    }

    /// Changes the sandbox's networks (a task joined or left one).
    pub fn set_networks(&self, networks: Vec<String>) {
        *self.networks.write() = Arc::new(networks);
    }

    /// The sandbox's networks.
    pub fn networks(&self) -> Arc<Vec<String>> {
        self.networks.read().clone()
    }
}

fn fallback(meta: Metadata) -> ResponseInfo {
    ResponseInfo::from(Header {
        metadata: meta,
        counts: HeaderCounts::default(),
    })
}

/// Longest text form of a DNS name (255 bytes on the wire).
const MAX_TEXT: usize = 255;

/// Writes `name` as dotted lower-case text (no trailing dot) into `buf`,
/// without allocating. `None` when a label holds a byte no record name
/// may contain (the name cannot be ours) or the name is too long.
fn name_key<'b>(name: &Name, buf: &'b mut [u8; MAX_TEXT]) -> Option<&'b str> {
    let mut len = 0;
    for label in name.iter() {
        if len > 0 {
            *buf.get_mut(len)? = b'.';
            len += 1;
        }
        let end = len + label.len();
        let dst = buf.get_mut(len..end)?;
        for (d, &b) in dst.iter_mut().zip(label) {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return None;
            }
            *d = b.to_ascii_lowercase();
        }
        len = end;
    }
    std::str::from_utf8(buf.get(..len)?).ok()
}

/// Our answer for a local name, or `None` when the name is not ours.
fn local_answer(
    db: &RecordDb,
    nets: &[String],
    name: &Name,
    qtype: RecordType,
) -> Option<Vec<Record>> {
    if qtype == RecordType::PTR {
        let ip = ptr_to_ip(&name.to_ascii())?;
        let target = db.reverse(nets, ip)?;
        let target = Name::from_ascii(format!("{target}.")).ok()?;
        return Some(vec![Record::from_rdata(
            name.clone(),
            TTL,
            RData::PTR(PTR(target)),
        )]);
    }
    let mut buf = [0u8; MAX_TEXT];
    let addrs = db.answers(nets, name_key(name, &mut buf)?)?;
    let want_v4 = match qtype {
        RecordType::A => Some(true),
        RecordType::AAAA => Some(false),
        RecordType::ANY => None,
        // The name exists but has no record of this type: NODATA.
        _ => return Some(Vec::new()),
    };
    let mut records: Vec<Record> = addrs
        .as_slice()
        .iter()
        .filter(|a| want_v4.is_none_or(|v4| a.is_ipv4() == v4))
        .map(|&a| Record::from_rdata(name.clone(), TTL, RData::from(a)))
        .collect();
    // Task addresses come shuffled (DNS round-robin).
    if records.len() > 1 {
        records.shuffle(&mut rand::rng());
    }
    Some(records)
}

/// `4.3.2.1.in-addr.arpa` -> 1.2.3.4 (IPv4 only).
fn ptr_to_ip(name: &str) -> Option<IpAddr> {
    let rest = name.trim_end_matches('.').to_ascii_lowercase();
    let rest = rest.strip_suffix(".in-addr.arpa")?;
    let mut o: Vec<u8> = rest
        .split('.')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if o.len() != 4 {
        return None;
    }
    o.reverse();
    Some(IpAddr::from([o[0], o[1], o[2], o[3]]))
}

#[async_trait::async_trait]
impl RequestHandler for SandboxHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let resp_edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(e.max_payload().max(512));
            r
        });
        let mut builder = builder;
        if let Some(e) = resp_edns.as_ref() {
            builder.edns(e);
        }

        if request.metadata.op_code != OpCode::Query
            || request.metadata.message_type != MessageType::Query
        {
            meta.response_code = ResponseCode::NotImp;
            return response
                .send_response(builder.build_no_records(meta))
                .await
                .unwrap_or_else(|_| fallback(meta));
        }
        let Ok(info) = request.request_info() else {
            meta.response_code = ResponseCode::FormErr;
            return response
                .send_response(builder.build_no_records(meta))
                .await
                .unwrap_or_else(|_| fallback(meta));
        };
        let query = info.query.original();
        let nets = self.networks();
        if query.query_class() == DNSClass::IN
            && let Some(answers) = local_answer(&self.db, &nets, query.name(), query.query_type())
        {
            meta.authoritative = true;
            let msg = builder.build(meta, answers.iter(), [], [], []);
            return response
                .send_response(msg)
                .await
                .unwrap_or_else(|_| fallback(meta));
        }
        if !self.db.may_forward(&nets) {
            // Internal networks never leak queries to the outside.
            meta.response_code = ResponseCode::Refused;
            return response
                .send_response(builder.build_no_records(meta))
                .await
                .unwrap_or_else(|_| fallback(meta));
        }
        let tcp = info.protocol == DnsProtocol::Tcp;
        // Boxed: the forward's state (sockets, timers, buffers) is only
        // allocated for the queries that forward, and every other query's
        // future (allocated per request) stays small.
        let forward = Box::pin(self.upstreams.forward(request.as_slice(), tcp));
        let upstream = match forward.await {
            Ok(bytes) => Message::from_vec(&bytes).ok(),
            Err(_) => None,
        };
        let Some(up) = upstream else {
            meta.response_code = ResponseCode::ServFail;
            return response
                .send_response(builder.build_no_records(meta))
                .await
                .unwrap_or_else(|_| fallback(meta));
        };
        meta.response_code = up.metadata.response_code;
        meta.truncation = up.metadata.truncation;
        meta.authentic_data = up.metadata.authentic_data;
        let msg = builder.build(
            meta,
            up.answers.iter(),
            up.authorities.iter(),
            [],
            up.additionals.iter(),
        );
        response
            .send_response(msg)
            .await
            .unwrap_or_else(|_| fallback(meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptr_names() {
        assert_eq!(
            ptr_to_ip("4.3.2.10.in-addr.arpa."),
            Some(IpAddr::from([10, 2, 3, 4]))
        );
        assert_eq!(ptr_to_ip("3.2.10.in-addr.arpa."), None);
        assert_eq!(ptr_to_ip("x.3.2.10.in-addr.arpa."), None);
        assert_eq!(ptr_to_ip("example.com."), None);
    }

    #[test]
    fn query_names_become_lookup_keys() {
        let key = |s: &str| {
            let mut buf = [0u8; MAX_TEXT];
            name_key(&Name::from_ascii(s).unwrap(), &mut buf).map(str::to_owned)
        };
        assert_eq!(key("Tasks.WEB.").as_deref(), Some("tasks.web"));
        assert_eq!(key("web.1.t_0").as_deref(), Some("web.1.t_0"));
        assert_eq!(key(".").as_deref(), Some(""));
        // a dot inside a label is not a separator: never one of our names
        assert_eq!(key("a\\.b"), None);
        let mut buf = [0u8; MAX_TEXT];
        let utf8 = Name::from_labels([&b"caf\xc3\xa9"[..]]).unwrap();
        assert_eq!(name_key(&utf8, &mut buf), None);
    }
}
