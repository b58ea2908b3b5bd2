//! What a refused request looks like to a person.

use tonic::{Code, Status};

/// A request the manager refused, or that never reached it.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct RequestError(pub Status);

impl From<Status> for RequestError {
    fn from(s: Status) -> Self {
        RequestError(s)
    }
}

/// `Error response from manager: <message>`, or a transport problem.
pub fn describe(s: &Status) -> String {
    match s.code() {
        Code::Unavailable if s.message().contains("transport") || s.message().is_empty() => {
            format!("cannot reach the manager: {}", s.message())
        }
        Code::Unknown if s.message().contains("may or may not") => {
            format!("outcome unknown: {}", s.message())
        }
        _ => format!("Error response from manager: {}", s.message()),
    }
}

/// True when a versioned write was refused because the object changed
/// since it was read.
pub fn is_out_of_sequence(s: &Status) -> bool {
    s.code() == Code::Aborted
}
