//! Constraint parsing and matching, as tables that read like SwarmKit's
//! rules.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use swarm_api::v1::{NodeRole, Placement};
use swarm_scheduler::constraint::{self, ConstraintError, Operator};
use swarm_scheduler::{ClusterScheduler, Scheduler};

/// (key, operator, value) of a parsed expression.
type Parsed = (&'static str, Operator, &'static str);

#[test]
fn parse_table() {
    // (expression, Ok((key, op, value)) or Err(message after the expression))
    let table: &[(&str, Result<Parsed, &str>)] = &[
        (
            "node.role==manager",
            Ok(("node.role", Operator::Eq, "manager")),
        ),
        (
            "node.role != worker",
            Ok(("node.role", Operator::NotEq, "worker")),
        ),
        (
            "  node.labels.zone==eu-west-1  ",
            Ok(("node.labels.zone", Operator::Eq, "eu-west-1")),
        ),
        (
            "node.labels.path==/data/x_y",
            Ok(("node.labels.path", Operator::Eq, "/data/x_y")),
        ),
        (
            "node.ip==10.0.0.0/8",
            Ok(("node.ip", Operator::Eq, "10.0.0.0/8")),
        ),
        (
            "node.ip!=2001:db8::1",
            Ok(("node.ip", Operator::NotEq, "2001:db8::1")),
        ),
        (
            "engine.labels.os==linux os",
            Ok(("engine.labels.os", Operator::Eq, "linux os")),
        ),
        ("_k==v", Ok(("_k", Operator::Eq, "v"))),
        (
            "a.b==(x|y)+[z]*?^$\\",
            Ok(("a.b", Operator::Eq, "(x|y)+[z]*?^$\\")),
        ),
        // `==` is looked for first: the value then holds `!=`, which is invalid.
        ("node.id==a!=b", Err("value 'a!=b' is invalid")),
        // `!==` contains `==`: the key becomes `node.id!`.
        ("node.id!==a", Err("key 'node.id!' is invalid")),
        (
            "node.role=manager",
            Err("constraint expected one operator from ==, !="),
        ),
        (
            "node.role",
            Err("constraint expected one operator from ==, !="),
        ),
        ("", Err("constraint expected one operator from ==, !=")),
        ("==manager", Err("key '' is invalid")),
        ("x==y", Err("key 'x' is invalid")),
        ("1abc==y", Err("key '1abc' is invalid")),
        ("node role==y", Err("key 'node role' is invalid")),
        ("node.labels.zone==", Err("value '' is invalid")),
        ("node.labels.zone==  ", Err("value '' is invalid")),
        ("node.labels.zone==a,b", Err("value 'a,b' is invalid")),
        ("node.labels.zone==a>b", Err("value 'a>b' is invalid")),
        ("node.labels.zone==é", Err("value 'é' is invalid")),
    ];
    for (expr, want) in table {
        match (constraint::parse(expr), want) {
            (Ok(c), Ok((k, op, v))) => {
                assert_eq!(
                    (c.key(), c.operator(), c.value()),
                    (*k, *op, *v),
                    "{expr:?}"
                );
                // Display round-trips through the parser.
                assert_eq!(constraint::parse(&c.to_string()).unwrap(), c, "{expr:?}");
            }
            (Err(e), Err(msg)) => {
                assert_eq!(e.expression(), *expr);
                assert_eq!(e.to_string(), format!("invalid constraint {expr:?}: {msg}"));
                assert_eq!(e.swarmkit_message(), *msg);
            }
            (got, _) => panic!("{expr:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn validate_placement_names_the_first_bad_expression() {
    let p = Placement {
        constraints: vec![
            "node.role==manager".into(),
            "node.labels.x=1".into(),
            "bad".into(),
        ],
        ..Default::default()
    };
    let err = constraint::validate_placement(&p).unwrap_err();
    assert!(
        matches!(err, ConstraintError::MissingOperator { ref expression } if expression == "node.labels.x=1")
    );
    assert!(constraint::validate_placement(&Placement::default()).is_ok());
}

/// The node every match case runs against.
fn subject() -> N {
    node("n1abc")
        .hostname("Web-01")
        .addr("192.168.1.20")
        .role(NodeRole::Manager)
        .platform("linux", "x86_64")
        .label("zone", "EU-1")
        .label("Zone", "upper")
        .label("empty", "")
        .engine_label("storage", "ssd")
}

#[test]
fn match_table() {
    let table: &[(&str, bool)] = &[
        ("node.id==n1abc", true),
        ("node.id==N1ABC", true),
        ("node.id!=n1abc", false),
        ("node.id==n1", false),
        ("node.hostname==web-01", true),
        ("node.hostname!=web-02", true),
        ("node.role==manager", true),
        ("node.role==MANAGER", true),
        ("node.role==worker", false),
        ("node.role!=worker", true),
        ("node.platform.os==Linux", true),
        ("node.platform.arch==x86_64", true),
        // Constraints compare the raw architecture (only the platform
        // filter normalises x86_64 to amd64).
        ("node.platform.arch==amd64", false),
        ("node.labels.zone==eu-1", true),
        ("node.labels.zone==eu", false),
        ("NODE.LABELS.zone==eu-1", true),
        ("node.labels.Zone==upper", true),
        ("node.labels.ZONE==eu-1", false),
        ("node.labels.missing!=x", true),
        ("node.labels.missing==x", false),
        ("node.labels.empty!=x", true),
        ("engine.labels.storage==SSD", true),
        ("engine.labels.storage!=ssd", false),
        ("engine.labels.zone==eu-1", false),
        ("node.ip==192.168.1.20", true),
        ("node.ip==192.168.1.21", false),
        ("node.ip!=192.168.1.21", true),
        ("node.ip==192.168.0.0/16", true),
        ("node.ip!=192.168.0.0/16", false),
        ("node.ip==10.0.0.0/8", false),
        ("node.ip!=10.0.0.0/8", true),
        ("node.ip==::ffff:192.168.1.20", true),
        ("node.ip==2001:db8::/32", false),
        // A malformed address never matches, whatever the operator.
        ("node.ip==not-an-ip", false),
        ("node.ip!=not-an-ip", false),
        // Unknown keys never match.
        ("node.name==web-01", false),
        ("node.name!=web-01", false),
        ("engine.id==x", false),
    ];
    let mut s = ClusterScheduler::new();
    s.upsert_node(&subject().0);
    let info = s.node("n1abc").unwrap();
    for (expr, want) in table {
        let c = constraint::parse(expr).unwrap();
        assert_eq!(c.matches(info), *want, "{expr}");
    }
}

#[test]
fn missing_description_and_ipv6() {
    let mut bare = node("bare");
    bare.0.description = None;
    let v6 = node("v6").addr("2001:db8::7");
    let mut s = ClusterScheduler::new();
    s.upsert_node(&bare.0);
    s.upsert_node(&v6.0);
    let bare = s.node("bare").unwrap();
    let v6 = s.node("v6").unwrap();
    let m = |e: &str, n| constraint::parse(e).unwrap().matches(n);
    assert!(m("node.hostname!=x", bare));
    assert!(!m("node.hostname==x", bare));
    assert!(m("node.platform.os!=linux", bare));
    assert!(m("engine.labels.a!=b", bare));
    assert!(!m("node.ip==10.0.0.1", bare));
    assert!(m("node.ip!=10.0.0.1", bare));
    assert!(m("node.ip==2001:db8::/32", v6));
    assert!(m("node.ip==2001:DB8::7", v6));
    assert!(!m("node.ip==10.0.0.0/8", v6));
}

#[test]
fn constraints_are_anded() {
    let mut s = ClusterScheduler::new();
    s.upsert_node(&subject().0);
    let info = s.node("n1abc").unwrap();
    let cs = constraint::parse_all(&["node.role==manager", "node.labels.zone==eu-1"]).unwrap();
    assert!(constraint::matches_all(&cs, info));
    let cs = constraint::parse_all(&["node.role==manager", "node.labels.zone==eu-2"]).unwrap();
    assert!(!constraint::matches_all(&cs, info));
    assert!(constraint::matches_all(&[], info));
}
