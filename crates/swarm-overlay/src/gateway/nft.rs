//! The gateway bridge's nftables table, rendered from its state as one
//! atomic batch (the table is dropped and rebuilt in one transaction), in a
//! table of its own so other components' tables in the namespace are left
//! alone.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, NAT, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use swarm_api::net::Cidr;

use super::{PortMapping, Protocol};

/// What the table is made from.
#[derive(Debug, Clone)]
pub(crate) struct Render<'a> {
    pub(crate) table: &'a str,
    pub(crate) bridge: &'a str,
    pub(crate) subnet: Cidr,
    pub(crate) icc: bool,
    /// (endpoint id, endpoint address, its published ports)
    pub(crate) endpoints: Vec<(&'a str, IpAddr, &'a [PortMapping])>,
}

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn ne(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::NEQ,
    })
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// Comment tagging a DNAT rule with its endpoint, read back on recovery.
pub(crate) fn port_comment(endpoint: &str, p: &PortMapping) -> String {
    format!(
        "ep={endpoint} {}/{}:{}",
        proto_name(p.protocol),
        p.published,
        p.target
    )
}

/// Parses a DNAT rule comment back.
pub(crate) fn parse_port_comment(c: &str) -> Option<(String, PortMapping)> {
    let rest = c.strip_prefix("ep=")?;
    let (ep, spec) = rest.split_once(' ')?;
    let (proto, ports) = spec.split_once('/')?;
    let (published, target) = ports.split_once(':')?;
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return None,
    };
    Some((
        ep.to_string(),
        PortMapping {
            protocol,
            published: published.parse().ok()?,
            target: target.parse().ok()?,
        },
    ))
}

/// The batch that replaces the table with the rendered one.
pub(crate) fn render(r: &Render<'_>) -> Nftables<'static> {
    let table = r.table.to_string();
    let family = if r.subnet.is_ipv6() {
        NfFamily::IP6
    } else {
        NfFamily::IP
    };
    let addr_proto = if r.subnet.is_ipv6() { "ip6" } else { "ip" };
    let mut b = Batch::new();
    // add + delete + add: replaces the table whether or not it existed.
    b.add(NfListObject::Table(Table {
        family,
        name: table.clone().into(),
        handle: None,
    }));
    b.delete(NfListObject::Table(Table {
        family,
        name: table.clone().into(),
        handle: None,
    }));
    b.add(NfListObject::Table(Table {
        family,
        name: table.clone().into(),
        handle: None,
    }));
    let chain = |name: &str, ty: NfChainType, hook: NfHook, prio: i32| {
        NfListObject::Chain(Chain {
            family,
            table: table.clone().into(),
            name: name.to_string().into(),
            _type: Some(ty),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..Chain::default()
        })
    };
    let rule = |chain: &str, expr: Vec<Statement<'static>>, comment: Option<String>| {
        NfListObject::Rule(Rule {
            family,
            table: table.clone().into(),
            chain: chain.to_string().into(),
            expr: expr.into(),
            comment: comment.map(Cow::Owned),
            ..Rule::default()
        })
    };
    b.add(chain(
        "prerouting",
        NfChainType::NAT,
        NfHook::Prerouting,
        -100,
    ));
    b.add(chain("output", NfChainType::NAT, NfHook::Output, -100));
    b.add(chain(
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        100,
    ));
    b.add(chain("forward", NfChainType::Filter, NfHook::Forward, 0));

    // Outbound: the bridge's subnet leaving through another interface is
    // masqueraded behind the host's address.
    let subnet = Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(r.subnet.network().addr().to_string())),
        len: u32::from(r.subnet.prefix()),
    }));
    b.add(rule(
        "postrouting",
        vec![
            eq(payload(addr_proto, "saddr"), subnet),
            ne(meta(MetaKey::Oifname), s(r.bridge)),
            Statement::Masquerade(None),
        ],
        None,
    ));
    if !r.icc {
        // Tasks do not talk to each other through the gateway bridge.
        b.add(rule(
            "forward",
            vec![
                eq(meta(MetaKey::Iifname), s(r.bridge)),
                eq(meta(MetaKey::Oifname), s(r.bridge)),
                Statement::Drop(None),
            ],
            None,
        ));
    }
    // Host-mode published ports: traffic to a local address of the host on
    // the published port goes to the task's address on the bridge.
    let local = || {
        let mut flags = HashSet::new();
        flags.insert(FibFlag::Daddr);
        eq(
            Expression::Named(NamedExpression::Fib(Fib {
                result: FibResult::Type,
                flags,
            })),
            s("local"),
        )
    };
    for (ep, addr, ports) in &r.endpoints {
        for p in ports.iter() {
            for chain_name in ["prerouting", "output"] {
                let dnat = Statement::DNAT(Some(NAT {
                    addr: Some(s(addr.to_string())),
                    family: None,
                    port: Some(Expression::Number(u32::from(p.target))),
                    flags: None,
                }));
                b.add(rule(
                    chain_name,
                    vec![
                        local(),
                        eq(
                            payload(proto_name(p.protocol), "dport"),
                            Expression::Number(u32::from(p.published)),
                        ),
                        dnat,
                    ],
                    Some(port_comment(ep, p)),
                ));
            }
        }
    }
    b.to_nftables()
}

/// The batch that deletes the table (adding it first, so that deleting a
/// table that is not there is not an error).
pub(crate) fn remove(table: &str, ipv6: bool) -> Nftables<'static> {
    let family = if ipv6 { NfFamily::IP6 } else { NfFamily::IP };
    let mut b = Batch::new();
    let t = || {
        NfListObject::Table(Table {
            family,
            name: table.to_string().into(),
            handle: None,
        })
    };
    b.add(t());
    b.delete(t());
    b.to_nftables()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_masquerade_icc_and_ports() {
        let ports = [PortMapping {
            protocol: Protocol::Tcp,
            published: 8080,
            target: 80,
        }];
        let r = Render {
            table: "swarm_gw_t",
            bridge: "swgw0",
            subnet: "172.18.0.0/16".parse().unwrap(),
            icc: false,
            endpoints: vec![("task1", "172.18.0.2".parse().unwrap(), &ports)],
        };
        let json = serde_json::to_value(render(&r)).unwrap();
        let text = json.to_string();
        assert!(text.contains("\"masquerade\""), "{text}");
        assert!(text.contains("\"dnat\""), "{text}");
        assert!(text.contains("ep=task1 tcp/8080:80"), "{text}");
        assert!(text.contains("\"drop\""), "{text}");
        // Table added, deleted, added, 4 chains, masquerade, icc, 2 DNAT rules.
        assert_eq!(
            json["nftables"].as_array().unwrap().len(),
            3 + 4 + 1 + 1 + 2
        );
        let with_icc = Render { icc: true, ..r };
        assert!(
            !serde_json::to_string(&render(&with_icc))
                .unwrap()
                .contains("\"drop\"")
        );
    }

    #[test]
    fn port_comments_round_trip() {
        let p = PortMapping {
            protocol: Protocol::Udp,
            published: 53,
            target: 5353,
        };
        assert_eq!(
            parse_port_comment(&port_comment("abc", &p)),
            Some(("abc".into(), p))
        );
        for bad in [
            "",
            "ep=",
            "ep=a tcp/1",
            "ep=a icmp/1:2",
            "ep=a tcp/x:2",
            "x=a tcp/1:2",
        ] {
            assert_eq!(parse_port_comment(bad), None, "{bad}");
        }
    }
}
