//! Placement constraints: `key==value` / `key!=value` expressions over node
//! attributes, parsed and matched exactly as SwarmKit does.
//!
//! Keys: `node.id`, `node.hostname`, `node.ip` (an address or a CIDR
//! network, IPv4 or IPv6), `node.role`, `node.platform.os`,
//! `node.platform.arch`, `node.labels.<name>` and `engine.labels.<name>`.
//! Keys and the `node.labels.`/`engine.labels.` prefixes are
//! case-insensitive, label names are not. Values compare as whole strings,
//! case-insensitively. A missing attribute or label compares as the empty
//! string (so `node.labels.x!=y` holds on a node without `x`), and a key
//! outside that list never matches.
//!
//! The syntax check is SwarmKit's: a key is a letter or `_` followed by at
//! least one of `[a-z0-9-_.]`; a value is one or more of letters, digits,
//! whitespace and `:-_.*()?+[]\^$|/`. The manager calls [`parse`] (or
//! [`validate_placement`]) when a service is created, so a bad expression
//! is refused with a [`ConstraintError`] that names it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use swarm_api::net::Cidr;
use swarm_api::v1::Placement;

use crate::node_info::NodeInfo;

/// Prefix of node label keys (`node.labels.<name>`).
pub const NODE_LABEL_PREFIX: &str = "node.labels.";
/// Prefix of engine label keys (`engine.labels.<name>`).
pub const ENGINE_LABEL_PREFIX: &str = "engine.labels.";

/// The comparison of a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `==`: the attribute equals the value.
    Eq,
    /// `!=`: the attribute differs from the value.
    NotEq,
}

impl Operator {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "==",
            Operator::NotEq => "!=",
        }
    }
}

/// What a constraint key refers to, resolved once at parse time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `node.id`.
    NodeId,
    /// `node.hostname`.
    Hostname,
    /// `node.ip`, with the value already parsed.
    Ip(IpValue),
    /// `node.role` (`worker` or `manager`).
    Role,
    /// `node.platform.os`.
    Os,
    /// `node.platform.arch`.
    Arch,
    /// `node.labels.<name>` (the name is case-sensitive).
    NodeLabel(String),
    /// `engine.labels.<name>` (the name is case-sensitive).
    EngineLabel(String),
    /// Any other key: never matches, whatever the operator.
    Unknown,
}

/// The value of a `node.ip` constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpValue {
    /// A single address.
    Addr(IpAddr),
    /// A network: the node's address must (or must not) be inside it.
    Network(Cidr),
    /// Neither: the constraint never matches (SwarmKit rejects the node).
    Malformed,
}

/// One parsed constraint expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Constraint {
    key: String,
    operator: Operator,
    value: String,
    target: Target,
}

/// A constraint expression that does not parse. Each variant names the
/// expression; the message after it is SwarmKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConstraintError {
    /// Neither `==` nor `!=` appears.
    #[error("invalid constraint {expression:?}: constraint expected one operator from ==, !=")]
    MissingOperator {
        /// The expression as given.
        expression: String,
    },
    /// The key is not `[A-Za-z_][A-Za-z0-9-_.]+`.
    #[error("invalid constraint {expression:?}: key '{key}' is invalid")]
    InvalidKey {
        /// The expression as given.
        expression: String,
        /// The key, trimmed.
        key: String,
    },
    /// The value is empty or holds a character outside the allowed set.
    #[error("invalid constraint {expression:?}: value '{value}' is invalid")]
    InvalidValue {
        /// The expression as given.
        expression: String,
        /// The value, trimmed.
        value: String,
    },
}

impl ConstraintError {
    /// SwarmKit's message alone, without the expression (what SwarmKit's
    /// control API returns), e.g. `key 'x' is invalid`.
    pub fn swarmkit_message(&self) -> String {
        match self {
            ConstraintError::MissingOperator { .. } => {
                "constraint expected one operator from ==, !=".to_string()
            }
            ConstraintError::InvalidKey { key, .. } => format!("key '{key}' is invalid"),
            ConstraintError::InvalidValue { value, .. } => format!("value '{value}' is invalid"),
        }
    }

    /// The expression that failed to parse.
    pub fn expression(&self) -> &str {
        match self {
            ConstraintError::MissingOperator { expression }
            | ConstraintError::InvalidKey { expression, .. }
            | ConstraintError::InvalidValue { expression, .. } => expression,
        }
    }
}

/// Parses one expression such as `node.labels.zone==eu-1`.
pub fn parse(expression: &str) -> Result<Constraint, ConstraintError> {
    // SwarmKit tries `==` first, then `!=`, and splits at the first
    // occurrence of the operator found.
    let (op, at, len) = if let Some(at) = expression.find("==") {
        (Operator::Eq, at, 2)
    } else if let Some(at) = expression.find("!=") {
        (Operator::NotEq, at, 2)
    } else {
        return Err(ConstraintError::MissingOperator {
            expression: expression.to_string(),
        });
    };
    let key = expression[..at].trim();
    let value = expression[at + len..].trim();
    if !valid_key(key) {
        return Err(ConstraintError::InvalidKey {
            expression: expression.to_string(),
            key: key.to_string(),
        });
    }
    if !valid_value(value) {
        return Err(ConstraintError::InvalidValue {
            expression: expression.to_string(),
            value: value.to_string(),
        });
    }
    Ok(Constraint::new(key, op, value))
}

/// Parses every expression; the first bad one is the error.
pub fn parse_all<S: AsRef<str>>(expressions: &[S]) -> Result<Vec<Constraint>, ConstraintError> {
    expressions.iter().map(|e| parse(e.as_ref())).collect()
}

/// Checks the constraint syntax of a placement, as SwarmKit's control API
/// does when a service is created or updated.
pub fn validate_placement(placement: &Placement) -> Result<(), ConstraintError> {
    parse_all(&placement.constraints).map(|_| ())
}

/// True when every constraint holds on the node (constraints are ANDed).
pub fn matches_all(constraints: &[Constraint], node: &NodeInfo) -> bool {
    constraints.iter().all(|c| c.matches(node))
}

fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() >= 2
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b':' | b'-'
                        | b'_'
                        | b'.'
                        | b'*'
                        | b'('
                        | b')'
                        | b'?'
                        | b'+'
                        | b'['
                        | b']'
                        | b'\\'
                        | b'^'
                        | b'$'
                        | b'|'
                        | b'/'
                        // RE2's \s: tab, newline, form feed, carriage return, space.
                        | b'\t'
                        | b'\n'
                        | 0x0c
                        | b'\r'
                        | b' '
                )
        })
}

fn strip_prefix_ci<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    if key.len() > prefix.len()
        && key.is_char_boundary(prefix.len())
        && key[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&key[prefix.len()..])
    } else {
        None
    }
}

impl Constraint {
    /// A constraint from its parts. The key and value are not syntax
    /// checked here: use [`parse`] for user input.
    pub fn new(key: &str, operator: Operator, value: &str) -> Self {
        let target = if key.eq_ignore_ascii_case("node.id") {
            Target::NodeId
        } else if key.eq_ignore_ascii_case("node.hostname") {
            Target::Hostname
        } else if key.eq_ignore_ascii_case("node.ip") {
            Target::Ip(if let Ok(ip) = IpAddr::from_str(value) {
                IpValue::Addr(ip.to_canonical())
            } else if let Ok(net) = Cidr::from_str(value) {
                IpValue::Network(net)
            } else {
                IpValue::Malformed
            })
        } else if key.eq_ignore_ascii_case("node.role") {
            Target::Role
        } else if key.eq_ignore_ascii_case("node.platform.os") {
            Target::Os
        } else if key.eq_ignore_ascii_case("node.platform.arch") {
            Target::Arch
        } else if let Some(name) = strip_prefix_ci(key, NODE_LABEL_PREFIX) {
            Target::NodeLabel(name.to_string())
        } else if let Some(name) = strip_prefix_ci(key, ENGINE_LABEL_PREFIX) {
            Target::EngineLabel(name.to_string())
        } else {
            Target::Unknown
        };
        Constraint {
            key: key.to_string(),
            operator,
            value: value.to_string(),
            target,
        }
    }

    /// The key as written.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The value as written (trimmed).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What the key refers to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Whole-string, case-insensitive comparison with the operator applied.
    fn compare(&self, attribute: &str) -> bool {
        let equal = self.value.eq_ignore_ascii_case(attribute)
            || (!self.value.is_ascii() && self.value.to_lowercase() == attribute.to_lowercase());
        match self.operator {
            Operator::Eq => equal,
            Operator::NotEq => !equal,
        }
    }

    /// True when the node satisfies this constraint.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        match &self.target {
            Target::NodeId => self.compare(node.id()),
            Target::Hostname => self.compare(node.hostname()),
            Target::Role => self.compare(node.role_name()),
            Target::Os => self.compare(node.platform().map_or("", |p| p.os.as_str())),
            Target::Arch => self.compare(node.platform().map_or("", |p| p.architecture.as_str())),
            Target::NodeLabel(name) => self.compare(node.node_label(name).unwrap_or("")),
            Target::EngineLabel(name) => self.compare(node.engine_label(name).unwrap_or("")),
            Target::Ip(value) => {
                let hit = match value {
                    IpValue::Addr(ip) => node.addr() == Some(*ip),
                    IpValue::Network(net) => node.addr().is_some_and(|a| net_contains(net, a)),
                    IpValue::Malformed => return false,
                };
                hit == (self.operator == Operator::Eq)
            }
            Target::Unknown => false,
        }
    }
}

/// Containment that, like Go's `net.IPNet.Contains`, sees an IPv4-mapped
/// IPv6 address inside an IPv4 network.
fn net_contains(net: &Cidr, addr: IpAddr) -> bool {
    let addr = addr.to_canonical();
    match (net.addr(), addr) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => net.contains(&addr),
        (IpAddr::V6(n), IpAddr::V4(a)) => {
            // An IPv4-mapped network (`::ffff:10.0.0.0/104`) holds IPv4 addresses.
            match n.to_ipv4_mapped() {
                Some(n4) if net.prefix() >= 96 => Cidr::new(IpAddr::V4(n4), net.prefix() - 96)
                    .is_ok_and(|c| c.contains(&IpAddr::V4(a))),
                _ => false,
            }
        }
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.key, self.operator.as_str(), self.value)
    }
}

impl FromStr for Constraint {
    type Err = ConstraintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_operator_and_trims() {
        let c = parse("  node.labels.zone ==  eu 1 ").unwrap();
        assert_eq!(c.key(), "node.labels.zone");
        assert_eq!(c.value(), "eu 1");
        assert_eq!(c.operator(), Operator::Eq);
        assert_eq!(c.target(), &Target::NodeLabel("zone".into()));
        assert_eq!(c.to_string(), "node.labels.zone==eu 1");
    }

    #[test]
    fn prefixes_are_case_insensitive_label_names_are_not() {
        let c = parse("NODE.Labels.Zone==a").unwrap();
        assert_eq!(c.target(), &Target::NodeLabel("Zone".into()));
        let c = parse("Engine.LABELS.x!=a").unwrap();
        assert_eq!(c.target(), &Target::EngineLabel("x".into()));
        // The bare prefix is not a label key.
        assert_eq!(parse("node.labels.==a").unwrap().target(), &Target::Unknown);
    }

    #[test]
    fn ip_values_are_resolved_at_parse_time() {
        let t = |s: &str| parse(s).unwrap().target().clone();
        assert!(matches!(
            t("node.ip==10.0.0.1"),
            Target::Ip(IpValue::Addr(_))
        ));
        assert!(matches!(
            t("node.ip!=10.0.0.0/8"),
            Target::Ip(IpValue::Network(_))
        ));
        assert!(matches!(
            t("node.ip==2001:db8::/32"),
            Target::Ip(IpValue::Network(_))
        ));
        assert!(matches!(t("node.ip==foo"), Target::Ip(IpValue::Malformed)));
    }

    #[test]
    fn mapped_addresses_fall_in_ipv4_networks() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net_contains(&net, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net_contains(&net, "2001:db8::1".parse().unwrap()));
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(net_contains(&mapped, "10.9.9.9".parse().unwrap()));
    }
}
