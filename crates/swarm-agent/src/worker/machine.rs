//! The task state machine, as a pure function: from what the agent has
//! observed of a task and what the orchestrator wants, the next step.
//!
//! Observed states only move forward (ACCEPTED → PREPARING → READY →
//! STARTING → RUNNING → COMPLETE/FAILED/SHUTDOWN); the runner
//! (the task runner of [`super::Worker`]) executes the steps and reports each state reached.

use swarm_api::v1::TaskState;

/// What to do next for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Report ACCEPTED.
    Accept,
    /// Report PREPARING, prepare, report READY (REJECTED on error).
    Prepare,
    /// Prepared, and the orchestrator wants it kept READY: wait for a new
    /// desired state.
    Hold,
    /// Report STARTING, start, report RUNNING (FAILED on error).
    Start,
    /// The task was started by a previous agent: re-adopt it or report
    /// it FAILED. Never start it again.
    Recover,
    /// Running: wait for it to exit or for a new desired state.
    Wait,
    /// Stop it (stop signal, grace period, kill) and report SHUTDOWN.
    Stop,
    /// Terminal: nothing more to do until it is removed.
    Done,
}

/// The next step for a task observed in `observed`, wanted in `desired`;
/// `started_here` tells whether this agent process started it.
///
/// Desired states up to COMPLETE mean "run" (COMPLETE is a job's desired
/// state: run to completion); READY and below mean "prepare only"; SHUTDOWN
/// and above mean "stop".
pub fn next_step(observed: TaskState, desired: TaskState, started_here: bool) -> Step {
    if observed.is_terminal() {
        return Step::Done;
    }
    if desired >= TaskState::Shutdown {
        return Step::Stop;
    }
    if observed < TaskState::Accepted {
        return Step::Accept;
    }
    if observed < TaskState::Ready {
        return Step::Prepare;
    }
    if observed == TaskState::Ready {
        return if desired >= TaskState::Running {
            Step::Start
        } else {
            Step::Hold
        };
    }
    // STARTING or RUNNING.
    if !started_here {
        return Step::Recover;
    }
    if observed == TaskState::Starting {
        return Step::Start;
    }
    Step::Wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    #[test]
    fn the_table() {
        #[rustfmt::skip]
        let table = [
            // observed, desired, started here -> step
            (Assigned,  Running,  false, Step::Accept),
            (Assigned,  Ready,    false, Step::Accept),
            (Accepted,  Running,  false, Step::Prepare),
            (Preparing, Running,  false, Step::Prepare),
            (Ready,     Ready,    false, Step::Hold),
            (Ready,     Running,  false, Step::Start),
            (Ready,     Complete, false, Step::Start),
            (Starting,  Running,  true,  Step::Start),
            (Running,   Running,  true,  Step::Wait),
            (Running,   Complete, true,  Step::Wait),
            // Started by a previous agent: never started twice.
            (Starting,  Running,  false, Step::Recover),
            (Running,   Running,  false, Step::Recover),
            // Stop wins over everything but a terminal state.
            (Assigned,  Shutdown, false, Step::Stop),
            (Ready,     Shutdown, false, Step::Stop),
            (Running,   Shutdown, true,  Step::Stop),
            (Running,   Remove,   false, Step::Stop),
            (Running,   Orphaned, true,  Step::Stop),
            // Terminal states stay.
            (Complete,  Running,  true,  Step::Done),
            (Failed,    Running,  false, Step::Done),
            (Shutdown,  Shutdown, false, Step::Done),
            (Rejected,  Running,  false, Step::Done),
        ];
        for (observed, desired, here, want) in table {
            assert_eq!(
                next_step(observed, desired, here),
                want,
                "{observed:?} / {desired:?} / started here {here}"
            );
        }
    }

    #[test]
    fn steps_never_lead_backwards() {
        // Each step reports states at or after the observed one.
        for observed in TaskState::ALL {
            for desired in TaskState::ALL {
                for here in [false, true] {
                    let reaches: &[TaskState] = match next_step(observed, desired, here) {
                        Step::Accept => &[Accepted],
                        Step::Prepare => &[Preparing, Ready, Rejected],
                        Step::Start => &[Starting, Running, Failed],
                        Step::Recover => &[Failed, Shutdown],
                        Step::Wait => &[Complete, Failed, Shutdown],
                        Step::Stop => &[Shutdown],
                        Step::Hold | Step::Done => &[],
                    };
                    for r in reaches {
                        assert!(observed <= *r, "{observed:?} -> {r:?} ({desired:?})");
                    }
                }
            }
        }
    }
}
