//! How a task's process ended.

use super::ExecError;

/// The end of a task's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code; 128 + the signal number when killed by a signal (as a
    /// shell reports it).
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// A normal exit with `code`.
    pub const fn code(code: i32) -> Self {
        ExitStatus { code, signal: None }
    }

    /// Death by `signal`.
    pub const fn signaled(signal: i32) -> Self {
        ExitStatus {
            code: 128 + signal,
            signal: Some(signal),
        }
    }

    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal.is_none()
    }

    /// `Ok` for a successful exit, [`ExecError::Exited`] otherwise.
    pub fn check(self) -> Result<ExitStatus, ExecError> {
        if self.success() {
            Ok(self)
        } else {
            Err(ExecError::Exited {
                code: self.code,
                signal: self.signal,
            })
        }
    }
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(s: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(code), _) => ExitStatus::code(code),
            (None, Some(sig)) => ExitStatus::signaled(sig),
            // Neither: stopped/continued statuses are not reported by wait.
            (None, None) => ExitStatus::code(-1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_their_code() {
        assert!(ExitStatus::code(0).check().is_ok());
        let err = ExitStatus::code(3).check().unwrap_err();
        assert_eq!(err.exit_code(), Some(3));
        assert_eq!(err.to_string(), "task exited with code 3");
        let err = ExitStatus::signaled(9).check().unwrap_err();
        assert_eq!(err.to_string(), "task exited with code 137 (signal 9)");
    }
}
