//! Shared helpers of the swarm-rs benchmark binaries: timing loops and a
//! report that prints each figure beside the anchor an issue names, as a
//! ratio. The machine is shared and noisy, so single-threaded figures are
//! taken as the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which
//! other processes disturb far less than wall time.
//!
//! ```
//! use swarm_benches::{Report, per_op};
//! let mut report = Report::new("example");
//! let t = per_op(1000, |_| { std::hint::black_box(1 + 1); });
//! report.row("add", t, Some(std::time::Duration::from_micros(1)), "per op");
//! report.print();
//! ```

#![allow(clippy::print_stdout, reason = "benchmark binaries report on stdout")]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// CPU time this thread has run (`CLOCK_THREAD_CPUTIME_ID`): on a shared
/// machine it moves only while this thread is on a core, so other
/// processes disturb it much less than wall time.
pub fn thread_cpu_time() -> Option<Duration> {
    use nix::time::{ClockId, clock_gettime};
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    let secs = u64::try_from(t.tv_sec()).ok()?;
    let nanos = u32::try_from(t.tv_nsec()).ok()?;
    Some(Duration::new(secs, nanos))
}

/// Times `f` by this thread's CPU time when available, else wall time.
pub fn timed(f: impl FnOnce()) -> Duration {
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    f();
    match (cpu, thread_cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall.elapsed(),
    }
}

/// Mean time per operation of `n` calls of `f(i)` (thread CPU time).
pub fn per_op(n: u64, mut f: impl FnMut(u64)) -> Duration {
    let total = timed(|| {
        for i in 0..n {
            f(i);
        }
    });
    total / u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// The median of `samples` runs of `f`, each timed as a whole.
pub fn median_of(samples: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..samples.max(1)).map(|_| f()).collect();
    times.sort();
    times[times.len() / 2]
}

/// Drives a future that completes without waiting (e.g. a write to a
/// local store), without the cost of a runtime.
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// One line of a report.
struct Row {
    name: String,
    measured: Duration,
    anchor: Option<Duration>,
    unit: String,
}

/// A table of figures beside their anchors.
pub struct Report {
    title: String,
    rows: Vec<Row>,
}

impl Report {
    /// An empty report.
    pub fn new(title: &str) -> Self {
        Report {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    /// Adds a figure; `anchor` is the time the anchor system takes for the
    /// same operation.
    pub fn row(&mut self, name: &str, measured: Duration, anchor: Option<Duration>, unit: &str) {
        self.rows.push(Row {
            name: name.into(),
            measured,
            anchor,
            unit: unit.into(),
        });
    }

    /// Prints the table.
    pub fn print(&self) {
        println!("\n## {}\n", self.title);
        println!("| operation | measured | anchor | speed-up vs anchor |");
        println!("|---|---|---|---|");
        for r in &self.rows {
            let (anchor, ratio) = match r.anchor {
                Some(a) => (
                    fmt(a),
                    format!(
                        "{:.1}x",
                        a.as_secs_f64() / r.measured.as_secs_f64().max(1e-12)
                    ),
                ),
                None => ("-".into(), "-".into()),
            };
            println!(
                "| {} | {} {} | {} | {} |",
                r.name,
                fmt(r.measured),
                r.unit,
                anchor,
                ratio
            );
        }
    }
}

/// A duration in the unit that reads best.
pub fn fmt(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}
