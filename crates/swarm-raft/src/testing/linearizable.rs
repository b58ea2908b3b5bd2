//! A linearizability checker for histories of registers (read, write,
//! compare-and-set on a few keys), after Wing & Gong with Lowe's
//! memoisation.
//!
//! A history is a list of operations, each with the (logical) time it was
//! invoked and, if it returned, the time and what it returned. An
//! operation whose outcome is unknown (a write that timed out, a call cut
//! by a crash) has no return: it may have taken effect at any point after
//! its invocation, or never. Operations that certainly failed (refused
//! before they were proposed) are left out of the history altogether.
//!
//! Registers are independent, so each key is checked on its own
//! (linearizability is compositional), which keeps the search small.
//!
//! The search walks the history's events in time order and, whenever it
//! meets an invocation, tries to linearize that operation at that point
//! (apply it to the model; it must produce what the operation returned).
//! Meeting a return whose operation is not linearized yet means the
//! choices so far were wrong: the last one is undone (backtracking). A
//! configuration (which operations are linearized, the register's value)
//! seen before is never explored again, which is what keeps the search
//! fast on long histories. The history is linearizable when every
//! operation that returned has been linearized; operations with unknown
//! outcome may stay out.

use std::collections::{BTreeMap, HashSet};

/// The value of a register (absent registers read as `None`).
pub type Value = u64;

/// What an operation asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// Read the register.
    Read,
    /// Set the register.
    Write(Value),
    /// Set the register to `new` if it holds `expect` (`None`: absent).
    Cas {
        /// The value required.
        expect: Option<Value>,
        /// The value to set.
        new: Value,
    },
}

/// What an operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// The value read.
    Read(Option<Value>),
    /// The write took effect.
    Written,
    /// Whether the compare-and-set took effect.
    Cas(bool),
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The register.
    pub key: String,
    /// What was asked.
    pub call: Call,
    /// When it was invoked.
    pub invoked: u64,
    /// When it returned and what, or `None` if the outcome is unknown.
    pub returned: Option<(u64, Ret)>,
}

/// A history that is not linearizable, with where the search got stuck.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// No order of the operations on `key` explains what they returned.
    #[error(
        "register {key:?} is not linearizable: at best {linearized} of {ops} operations \
         could be ordered, then {stuck:?} could not be placed"
    )]
    NotLinearizable {
        /// The register.
        key: String,
        /// Operations on it.
        ops: usize,
        /// The most operations the search could order.
        linearized: usize,
        /// The operation that returned before it could be placed, at that
        /// deepest point.
        stuck: Box<Op>,
    },
    /// An operation returned before it was invoked.
    #[error("operation {0:?} returns before it is invoked")]
    Malformed(Box<Op>),
    /// The search gave up after its step budget: neither verdict.
    #[error("register {key:?}: search budget of {steps} steps exhausted")]
    Inconclusive {
        /// The register.
        key: String,
        /// The budget.
        steps: u64,
    },
}

/// Default step budget per register.
pub const DEFAULT_STEPS: u64 = 50_000_000;

/// Checks a whole history (every key, from an empty store) with the
/// default budget.
pub fn check(history: &[Op]) -> Result<(), Violation> {
    check_with_budget(history, DEFAULT_STEPS)
}

/// Checks a whole history, giving each key's search at most `steps`
/// steps.
pub fn check_with_budget(history: &[Op], steps: u64) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        if let Some((at, _)) = op.returned
            && at < op.invoked
        {
            return Err(Violation::Malformed(Box::new(op.clone())));
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        check_key(key, &ops, steps)?;
    }
    Ok(())
}

/// The register after `call` in `state`, if that is consistent with what
/// the call returned (`None` return: the outcome is unknown).
fn step(state: Option<Value>, call: Call, ret: Option<Ret>) -> Option<Option<Value>> {
    match (call, ret) {
        (Call::Read, Some(Ret::Read(v))) => (v == state).then_some(state),
        (Call::Read, None) => Some(state),
        (Call::Write(v), None | Some(Ret::Written)) => Some(Some(v)),
        (Call::Cas { expect, new }, None) => Some(if state == expect { Some(new) } else { state }),
        (Call::Cas { expect, new }, Some(Ret::Cas(true))) => (state == expect).then_some(Some(new)),
        (Call::Cas { expect, .. }, Some(Ret::Cas(false))) => (state != expect).then_some(state),
        _ => None,
    }
}

/// An invocation or a return, in a doubly linked list ordered by time.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    call: bool,
    prev: usize,
    next: usize,
    /// For an invocation: its return event, if any.
    ret: Option<usize>,
}

/// Index of the list head (a sentinel) and of "no event".
const HEAD: usize = 0;
const NIL: usize = usize::MAX;

struct List {
    ev: Vec<Event>,
}

impl List {
    fn new(ops: &[&Op]) -> List {
        // (time, is return, op): at equal times a return sorts after the
        // invocation, which only allows more orders, never fewer.
        let mut times: Vec<(u64, bool, usize)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            times.push((op.invoked, false, i));
            if let Some((at, _)) = op.returned {
                times.push((at, true, i));
            }
        }
        times.sort_unstable();
        let mut ev = vec![Event {
            op: NIL,
            call: false,
            prev: NIL,
            next: NIL,
            ret: None,
        }];
        let mut call_of = vec![NIL; ops.len()];
        for (_, is_ret, op) in times {
            let me = ev.len();
            let prev = me - 1;
            ev[prev].next = me;
            ev.push(Event {
                op,
                call: !is_ret,
                prev,
                next: NIL,
                ret: None,
            });
            if is_ret {
                let c = call_of[op];
                if let Some(call) = ev.get_mut(c) {
                    call.ret = Some(me);
                }
            } else {
                call_of[op] = me;
            }
        }
        List { ev }
    }

    fn unlink(&mut self, i: usize) {
        let Event { prev, next, .. } = self.ev[i];
        self.ev[prev].next = next;
        if next != NIL {
            self.ev[next].prev = prev;
        }
    }

    /// Puts back an event removed by [`List::unlink`] (in reverse order of
    /// removal, its neighbours are the same again).
    fn relink(&mut self, i: usize) {
        let Event { prev, next, .. } = self.ev[i];
        self.ev[prev].next = i;
        if next != NIL {
            self.ev[next].prev = i;
        }
    }

    /// Removes an operation (its invocation and return) from the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        if let Some(r) = self.ev[call].ret {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, call: usize) {
        if let Some(r) = self.ev[call].ret {
            self.relink(r);
        }
        self.relink(call);
    }
}

/// Which operations are linearized.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize, on: bool) {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if on {
            self.0[w] |= b;
        } else {
            self.0[w] &= !b;
        }
    }
}

fn check_key(key: &str, ops: &[&Op], budget: u64) -> Result<(), Violation> {
    let mut list = List::new(ops);
    let mut linearized = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, Option<Value>)> = HashSet::new();
    // (invocation event, register before it) per linearized operation.
    let mut stack: Vec<(usize, Option<Value>)> = Vec::new();
    let mut state: Option<Value> = None;
    let mut deepest = (0usize, None::<usize>);
    let mut entry = list.ev[HEAD].next;
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps > budget {
            return Err(Violation::Inconclusive {
                key: key.to_string(),
                steps: budget,
            });
        }
        if entry == NIL {
            // Only invocations of operations with unknown outcome are
            // left (or nothing): every operation that returned is placed.
            return Ok(());
        }
        let ev = list.ev[entry];
        let op = ops[ev.op];
        if ev.call {
            if let Some(next_state) = step(state, op.call, op.returned.map(|(_, r)| r)) {
                linearized.set(ev.op, true);
                if seen.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    list.lift(entry);
                    entry = list.ev[HEAD].next;
                    continue;
                }
                linearized.set(ev.op, false);
            }
            entry = ev.next;
        } else {
            // A return whose operation could not be placed before it.
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), Some(ev.op));
            }
            let Some((call, before)) = stack.pop() else {
                let stuck = deepest.1.map_or(ev.op, |o| o);
                return Err(Violation::NotLinearizable {
                    key: key.to_string(),
                    ops: ops.len(),
                    linearized: deepest.0,
                    stuck: Box::new(ops[stuck].clone()),
                });
            };
            state = before;
            linearized.set(list.ev[call].op, false);
            list.unlift(call);
            entry = list.ev[call].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(invoked: u64, call: Call, returned: Option<(u64, Ret)>) -> Op {
        Op {
            key: "k".into(),
            call,
            invoked,
            returned,
        }
    }
    fn w(a: u64, b: u64, v: Value) -> Op {
        op(a, Call::Write(v), Some((b, Ret::Written)))
    }
    fn r(a: u64, b: u64, v: Option<Value>) -> Op {
        op(a, Call::Read, Some((b, Ret::Read(v))))
    }
    fn cas(a: u64, b: u64, expect: Option<Value>, new: Value, ok: bool) -> Op {
        op(a, Call::Cas { expect, new }, Some((b, Ret::Cas(ok))))
    }
    fn unknown_write(a: u64, v: Value) -> Op {
        op(a, Call::Write(v), None)
    }

    fn good(h: &[Op]) {
        if let Err(e) = check(h) {
            panic!("should be linearizable: {e}\n{h:#?}");
        }
    }
    fn bad(h: &[Op]) {
        match check(h) {
            Err(Violation::NotLinearizable { .. }) => {}
            other => panic!("should not be linearizable, got {other:?}\n{h:#?}"),
        }
    }

    #[test]
    fn sequential_histories() {
        good(&[]);
        good(&[r(1, 2, None)]);
        good(&[w(1, 2, 1), r(3, 4, Some(1)), w(5, 6, 2), r(7, 8, Some(2))]);
        bad(&[r(1, 2, Some(1))]);
        bad(&[w(1, 2, 1), r(3, 4, None)]);
        bad(&[w(1, 2, 1), w(3, 4, 2), r(5, 6, Some(1))]);
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // Two overlapping writes, then reads: either order is fine, but
        // both reads after them must agree.
        good(&[w(1, 4, 1), w(2, 5, 2), r(6, 7, Some(1))]);
        good(&[w(1, 4, 1), w(2, 5, 2), r(6, 7, Some(2))]);
        bad(&[w(1, 4, 1), w(2, 5, 2), r(6, 7, Some(1)), r(8, 9, Some(2))]);
        // A read overlapping a write may see the old or the new value.
        good(&[w(1, 2, 1), w(3, 6, 2), r(4, 5, Some(1))]);
        good(&[w(1, 2, 1), w(3, 6, 2), r(4, 5, Some(2))]);
    }

    #[test]
    fn a_stale_read_is_caught() {
        // The classic split brain: a write returned, a later read (not
        // overlapping it) shows the value before.
        bad(&[w(1, 2, 1), w(3, 4, 2), r(5, 6, Some(1)), r(7, 8, Some(2))]);
        // Reads going back in time while a write is in flight.
        bad(&[w(1, 2, 1), w(3, 10, 2), r(4, 5, Some(2)), r(6, 7, Some(1))]);
    }

    #[test]
    fn compare_and_set() {
        good(&[
            w(1, 2, 1),
            cas(3, 4, Some(1), 2, true),
            cas(5, 6, Some(1), 3, false),
            r(7, 8, Some(2)),
        ]);
        good(&[cas(1, 2, None, 5, true), r(3, 4, Some(5))]);
        // Two CAS from the same value cannot both succeed.
        bad(&[
            w(1, 2, 1),
            cas(3, 6, Some(1), 2, true),
            cas(4, 7, Some(1), 3, true),
        ]);
        // A failed CAS claims the value was not what it was.
        bad(&[w(1, 2, 1), cas(3, 4, Some(1), 2, false)]);
        // Concurrent: the first wins, the second fails and sees the result.
        good(&[
            w(1, 2, 1),
            cas(3, 6, Some(1), 2, true),
            cas(4, 7, Some(1), 3, false),
            r(8, 9, Some(2)),
        ]);
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_have_happened() {
        // A timed-out write later seen: fine.
        good(&[w(1, 2, 1), unknown_write(3, 2), r(10, 11, Some(2))]);
        // Never seen: fine too.
        good(&[w(1, 2, 1), unknown_write(3, 2), r(10, 11, Some(1))]);
        // Seen, then unseen again without another write: not fine.
        bad(&[
            w(1, 2, 1),
            unknown_write(3, 2),
            r(10, 11, Some(2)),
            r(12, 13, Some(1)),
        ]);
        // It cannot take effect before it was invoked.
        bad(&[w(1, 2, 1), r(3, 4, Some(2)), unknown_write(5, 2)]);
        // An unknown CAS that took effect.
        good(&[
            w(1, 2, 1),
            op(
                3,
                Call::Cas {
                    expect: Some(1),
                    new: 7,
                },
                None,
            ),
            r(20, 21, Some(7)),
        ]);
    }

    #[test]
    fn keys_are_independent() {
        let mut h = vec![w(1, 2, 1), r(3, 4, Some(1))];
        let mut other = r(1, 4, Some(9));
        other.key = "other".into();
        h.push(other);
        match check(&h) {
            Err(Violation::NotLinearizable { key, .. }) => assert_eq!(key, "other"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_and_budget() {
        assert!(matches!(
            check(&[r(5, 4, None)]),
            Err(Violation::Malformed(_))
        ));
        let h: Vec<Op> = (0..20).map(|i| w(1, 100, i)).collect();
        assert!(matches!(
            check_with_budget(&h, 10),
            Err(Violation::Inconclusive { .. })
        ));
    }

    #[test]
    fn long_concurrent_histories_are_checked_quickly() {
        // 4,000 operations, overlapping writes and reads:
        // the memoised search must not explode.
        let mut h = Vec::new();
        let mut t = 0;
        for round in 0..500u64 {
            // 4 overlapping writes, then reads that all see the third:
            // consistent with it taking effect last.
            for c in 0..4 {
                h.push(w(t + c, t + 20 + c, round * 10 + c));
            }
            t += 30;
            for _ in 0..4 {
                h.push(r(t, t + 1, Some(round * 10 + 2)));
                t += 2;
            }
        }
        let started = std::time::Instant::now();
        good(&h);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // One bad read at the end is found.
        h.push(r(t + 5, t + 6, Some(3)));
        bad(&h);
    }
}
