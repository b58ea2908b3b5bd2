//! Stop signals by name or number.

use nix::sys::signal::Signal;

use super::ExecError;

/// Parses `SIGTERM`, `TERM`, `term` or `15`. Empty means the default
/// (`SIGTERM`).
pub fn parse_signal(text: &str) -> Result<Signal, ExecError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Signal::SIGTERM);
    }
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n)
            .map_err(|_| ExecError::InvalidSpec(format!("unknown signal number {n}")));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| ExecError::InvalidSpec(format!("unknown signal {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_defaults() {
        let table = [
            ("", Some(Signal::SIGTERM)),
            ("SIGTERM", Some(Signal::SIGTERM)),
            ("term", Some(Signal::SIGTERM)),
            ("SIGINT", Some(Signal::SIGINT)),
            ("usr1", Some(Signal::SIGUSR1)),
            ("9", Some(Signal::SIGKILL)),
            ("SIGNOPE", None),
            ("999", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_signal(text).ok(), want, "{text:?}");
        }
    }
}
