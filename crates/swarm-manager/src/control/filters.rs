//! The common list filters: names, name prefixes, id prefixes, labels.

use std::collections::BTreeMap;

use swarm_api::v1::{Annotations, ListFilters};

/// True when an object with this id and annotations passes the filters.
/// Empty filter fields do not filter; non-empty ones must all match.
pub(crate) fn matches(
    filters: Option<&ListFilters>,
    id: &str,
    annotations: Option<&Annotations>,
) -> bool {
    let Some(f) = filters else { return true };
    let name = annotations.map_or("", |a| a.name.as_str());
    let empty = BTreeMap::new();
    let labels = annotations.map_or(&empty, |a| &a.labels);
    (f.names.is_empty() || f.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        && (f.name_prefixes.is_empty()
            || f.name_prefixes
                .iter()
                .any(|p| name.to_lowercase().starts_with(&p.to_lowercase())))
        && (f.id_prefixes.is_empty() || f.id_prefixes.iter().any(|p| id.starts_with(p.as_str())))
        && f.labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| v.is_empty() || have == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_table() {
        let a = Annotations {
            name: "Web".into(),
            labels: [("tier".to_string(), "front".to_string())].into(),
        };
        let f = |names: &[&str], prefixes: &[&str], ids: &[&str], labels: &[(&str, &str)]| {
            ListFilters {
                names: names.iter().map(|s| s.to_string()).collect(),
                name_prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
                id_prefixes: ids.iter().map(|s| s.to_string()).collect(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        };
        let table = [
            (f(&[], &[], &[], &[]), true),
            (f(&["web"], &[], &[], &[]), true),
            (f(&["api"], &[], &[], &[]), false),
            (f(&[], &["w"], &[], &[]), true),
            (f(&[], &["x"], &[], &[]), false),
            (f(&[], &[], &["ab"], &[]), true),
            (f(&[], &[], &["b"], &[]), false),
            (f(&[], &[], &[], &[("tier", "")]), true),
            (f(&[], &[], &[], &[("tier", "front")]), true),
            (f(&[], &[], &[], &[("tier", "back")]), false),
            (f(&[], &[], &[], &[("zone", "")]), false),
        ];
        for (filters, want) in table {
            assert_eq!(
                matches(Some(&filters), "abc123", Some(&a)),
                want,
                "{filters:?}"
            );
        }
    }
}
