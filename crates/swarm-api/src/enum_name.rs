//! Short, readable names for the protocol's enums.

use std::fmt;

/// The short lowercase name of each value of a protocol enum: `running` for
/// `TASK_STATE_RUNNING`, `on_failure` for `RESTART_CONDITION_ON_FAILURE`.
///
/// These names are what the JSON form of every message uses, and what
/// `swarmctl` prints and accepts. Implemented for every enum of
/// [`crate::v1`] by the build script.
pub trait EnumName: Sized + Copy + TryFrom<i32> + Into<i32> + 'static {
    /// Every value with its short name, in declaration order.
    const NAMES: &'static [(i32, &'static str)];

    /// The short name of this value.
    fn short_name(self) -> &'static str {
        let v: i32 = self.into();
        // Every value of the enum is in NAMES (generated from the same
        // descriptor), so the fallback is never reached.
        Self::name_of(v).unwrap_or("unknown")
    }

    /// The short name of a raw protocol value, if it is a known value.
    fn name_of(value: i32) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, n)| *n)
    }

    /// Parses a short name, case-insensitively, with `-` and `_` equivalent
    /// (`stop-first` and `STOP_FIRST` both name `UPDATE_ORDER_STOP_FIRST`).
    fn parse_name(name: &str) -> Result<Self, ParseEnumError> {
        let wanted = name.trim().replace('-', "_").to_ascii_lowercase();
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == wanted)
            .and_then(|(v, _)| Self::try_from(*v).ok())
            .ok_or_else(|| ParseEnumError::new::<Self>(name))
    }

    /// All short names, for error messages and help texts.
    fn names() -> Vec<&'static str> {
        Self::NAMES.iter().map(|(_, n)| *n).collect()
    }
}

/// A name that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEnumError {
    /// The text that did not parse.
    pub given: String,
    /// The accepted names.
    pub expected: Vec<&'static str>,
}

impl ParseEnumError {
    fn new<E: EnumName>(given: &str) -> Self {
        ParseEnumError {
            given: given.to_string(),
            expected: E::names(),
        }
    }
}

impl fmt::Display for ParseEnumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value {:?}, expected one of: {}",
            self.given,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for ParseEnumError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{NodeAvailability, RestartCondition, TaskState, UpdateOrder};

    #[test]
    fn names_round_trip_for_every_task_state() {
        for (value, name) in TaskState::NAMES {
            let state = TaskState::try_from(*value).unwrap();
            assert_eq!(state.short_name(), *name);
            assert_eq!(TaskState::parse_name(name).unwrap(), state);
        }
        assert_eq!(TaskState::Running.short_name(), "running");
    }

    #[test]
    fn parse_accepts_dashes_and_case() {
        assert_eq!(
            UpdateOrder::parse_name("start-first").unwrap(),
            UpdateOrder::StartFirst
        );
        assert_eq!(
            UpdateOrder::parse_name("STOP_FIRST").unwrap(),
            UpdateOrder::StopFirst
        );
        assert_eq!(
            RestartCondition::parse_name("on-failure").unwrap(),
            RestartCondition::OnFailure
        );
        let err = NodeAvailability::parse_name("sleepy").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown value \"sleepy\", expected one of: active, pause, drain"
        );
    }

    #[test]
    fn unknown_raw_values_have_no_name() {
        assert_eq!(TaskState::name_of(1), None);
        assert_eq!(TaskState::name_of(576), Some("running"));
    }
}
