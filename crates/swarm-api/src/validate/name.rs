//! Object names.

use super::{Result, fail};
use crate::defaults::MAX_NAME_LEN;

/// Checks an object name: 1 to 63 characters, letters and digits with `-`
/// or `_` inside but not at either end (SwarmKit's rule; underscores are
/// allowed because stacks name services `<stack>_<service>`).
pub fn validate_name(field: &str, name: &str) -> Result {
    if name.is_empty() {
        return fail(field, "a name is required");
    }
    if name.len() > MAX_NAME_LEN {
        return fail(
            field,
            format!("{name:?} is longer than {MAX_NAME_LEN} characters"),
        );
    }
    let bytes = name.as_bytes();
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    let ends_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if !inner_ok || !ends_ok {
        return fail(
            field,
            format!(
                "{name:?} is not a valid name: use letters, digits, '-' and '_', \
                 starting and ending with a letter or digit"
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_table() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        let table: &[(&str, bool)] = &[
            ("web", true),
            ("Web-1", true),
            ("stack_web", true),
            ("a", true),
            ("9lives", true),
            (&long, true),
            ("", false),
            (&too_long, false),
            ("-web", false),
            ("web-", false),
            ("_web", false),
            ("web.app", false),
            ("web app", false),
            ("wéb", false),
        ];
        for (name, ok) in table {
            assert_eq!(validate_name("name", name).is_ok(), *ok, "{name:?}");
        }
        let err = validate_name("spec.annotations.name", "web.app").unwrap_err();
        assert_eq!(err.field, "spec.annotations.name");
        assert!(
            err.to_string()
                .starts_with("invalid spec.annotations.name: \"web.app\" is not a valid name")
        );
    }
}
