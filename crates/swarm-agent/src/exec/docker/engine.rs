//! The engine's errors as [`ExecError`]s, and the answers that are not
//! failures (a container already gone, already stopped).

use bollard::errors::Error;

use crate::exec::ExecError;

/// An [`ExecError::Engine`] for `what`.
pub(super) fn err(what: impl Into<String>) -> impl FnOnce(Error) -> ExecError {
    let what = what.into();
    move |e| ExecError::Engine {
        what,
        reason: reason(&e),
    }
}

/// The engine's message, without bollard's wrapping.
pub(super) fn reason(e: &Error) -> String {
    match e {
        Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// The HTTP status the engine answered with, if it answered.
pub(super) fn status(e: &Error) -> Option<u16> {
    match e {
        Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// True when the engine does not know the object (HTTP 404).
pub(super) fn is_not_found(e: &Error) -> bool {
    status(e) == Some(404)
}

/// True when the object is not in a state for the request, e.g. killing
/// a container that is not running (HTTP 409), or an object already
/// being removed.
pub(super) fn is_conflict(e: &Error) -> bool {
    status(e) == Some(409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_answers() {
        let gone = Error::DockerResponseServerError {
            status_code: 404,
            message: "No such container: x".into(),
        };
        assert!(is_not_found(&gone) && !is_conflict(&gone));
        assert_eq!(reason(&gone), "No such container: x (HTTP 404)");
        let busy = Error::DockerResponseServerError {
            status_code: 409,
            message: "is not running".into(),
        };
        assert!(is_conflict(&busy));
        assert_eq!(status(&Error::RequestTimeoutError), None);
        let e = err("start")(busy);
        assert_eq!(
            e.to_string(),
            "container engine: start: is not running (HTTP 409)"
        );
    }
}
