//! A bounded in-memory buffer of a task's output lines, for log
//! publishing: the oldest lines go when it is full, and readers take the
//! last N lines and then follow new ones as they are written.
//!
//! Every line gets a sequence number (lines ever pushed before it), so a
//! [`LogReader`] knows exactly where it is: the lines it read as its tail
//! and the lines it follows afterwards never overlap and never leave a
//! gap, except for lines evicted before it read them (counted in
//! [`LogReader::missed`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

/// Longest line kept; the rest of a longer line is cut.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// One line of a task's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line was read.
    pub timestamp: SystemTime,
    /// True for standard error, false for standard output.
    pub stderr: bool,
    /// The line, without its newline (lossy UTF-8).
    pub line: String,
}

/// Output lines of one task, at most `capacity` bytes of text. Cheap to
/// clone (clones share the lines).
#[derive(Debug, Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    lines: Mutex<Lines>,
    /// Sequence number the next line will get (= lines ever pushed).
    pushed: watch::Sender<u64>,
}

#[derive(Debug)]
struct Lines {
    lines: VecDeque<LogLine>,
    /// Sequence number of `lines[0]` (= lines evicted so far).
    first: u64,
    bytes: usize,
    capacity: usize,
}

impl Lines {
    fn end(&self) -> u64 {
        self.first + self.lines.len() as u64
    }
}

impl LogBuffer {
    /// A buffer holding at most `capacity` bytes of lines.
    pub fn new(capacity: usize) -> Self {
        LogBuffer {
            shared: Arc::new(Shared {
                lines: Mutex::new(Lines {
                    lines: VecDeque::new(),
                    first: 0,
                    bytes: 0,
                    capacity,
                }),
                pushed: watch::channel(0).0,
            }),
        }
    }

    /// Appends a line, dropping the oldest ones to make room, and wakes
    /// the readers following the buffer.
    pub fn push(&self, stderr: bool, mut line: String) {
        if line.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        let mut l = self.shared.lines.lock();
        l.bytes += line.len();
        l.lines.push_back(LogLine {
            timestamp: SystemTime::now(),
            stderr,
            line,
        });
        while l.bytes > l.capacity {
            match l.lines.pop_front() {
                Some(old) => {
                    l.bytes -= old.line.len();
                    l.first += 1;
                }
                None => break,
            }
        }
        // Under the lock, so the count readers wait on never runs ahead
        // of the lines they can see.
        self.shared.pushed.send_replace(l.end());
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        self.shared.lines.lock().lines.iter().cloned().collect()
    }

    /// How many lines were dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.shared.lines.lock().first
    }

    /// A reader positioned before the last `tail` lines kept (`None`: all
    /// lines kept): [`LogReader::read_now`] returns them, and later reads
    /// return the lines written after them.
    pub fn reader(&self, tail: Option<usize>) -> LogReader {
        let l = self.shared.lines.lock();
        let end = l.end();
        let next = match tail {
            None => l.first,
            Some(n) => end.saturating_sub(n as u64).max(l.first),
        };
        LogReader {
            shared: self.shared.clone(),
            pushed: self.shared.pushed.subscribe(),
            next,
            missed: 0,
        }
    }

    /// Reads `reader` line by line into the buffer until it closes.
    pub async fn capture(self, reader: impl AsyncRead + Unpin, stderr: bool) {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    self.push(stderr, String::from_utf8_lossy(&buf).into_owned());
                }
            }
        }
    }
}

/// A position in a [`LogBuffer`]: reads return the lines after it and
/// move it forward. See [`LogBuffer::reader`].
#[derive(Debug)]
pub struct LogReader {
    shared: Arc<Shared>,
    pushed: watch::Receiver<u64>,
    /// Sequence number of the next line to return.
    next: u64,
    missed: u64,
}

impl LogReader {
    /// The lines after the reader's position available now (none when it
    /// has caught up), at most `max` of them.
    pub fn read_now(&mut self, max: usize) -> Vec<LogLine> {
        let l = self.shared.lines.lock();
        if self.next < l.first {
            self.missed += l.first - self.next;
            self.next = l.first;
        }
        let skip = usize::try_from(self.next - l.first).unwrap_or(usize::MAX);
        let out: Vec<LogLine> = l.lines.iter().skip(skip).take(max).cloned().collect();
        self.next += out.len() as u64;
        out
    }

    /// Waits until a line is written after the reader's position, then
    /// returns the lines available (at most `max`, at least one). Never
    /// returns while no line comes: use it in a `select!` with whatever
    /// ends the reading.
    pub async fn read(&mut self, max: usize) -> Vec<LogLine> {
        loop {
            let lines = self.read_now(max.max(1));
            if !lines.is_empty() {
                return lines;
            }
            let next = self.next;
            // The sender lives in `shared`, which this reader holds: the
            // channel cannot close while we wait.
            if self.pushed.wait_for(|end| *end > next).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Lines evicted from the buffer before this reader got to them.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: Vec<LogLine>) -> Vec<String> {
        lines.into_iter().map(|l| l.line).collect()
    }

    #[test]
    fn keeps_the_newest_lines_within_capacity() {
        let b = LogBuffer::new(10);
        for i in 0..6 {
            b.push(false, format!("l{i}"));
        }
        assert_eq!(text(b.lines()), ["l1", "l2", "l3", "l4", "l5"]);
        assert_eq!(b.dropped(), 1);
        b.push(true, "x".repeat(MAX_LINE_BYTES + 10));
        assert!(
            b.lines().is_empty(),
            "a line larger than the buffer evicts all"
        );
    }

    #[test]
    fn a_reader_takes_the_tail_then_only_new_lines() {
        let b = LogBuffer::new(1024);
        for i in 0..5 {
            b.push(false, format!("l{i}"));
        }
        let mut tail2 = b.reader(Some(2));
        let mut all = b.reader(None);
        let mut none = b.reader(Some(0));
        let mut more = b.reader(Some(50));
        assert_eq!(text(tail2.read_now(100)), ["l3", "l4"]);
        assert_eq!(text(all.read_now(3)), ["l0", "l1", "l2"], "at most max");
        assert_eq!(text(all.read_now(100)), ["l3", "l4"]);
        assert!(none.read_now(100).is_empty());
        assert_eq!(more.read_now(100).len(), 5);
        b.push(true, "l5".into());
        for r in [&mut tail2, &mut all, &mut none, &mut more] {
            let got = r.read_now(100);
            assert_eq!(text(got.clone()), ["l5"]);
            assert!(got[0].stderr);
            assert!(r.read_now(100).is_empty(), "read once");
        }
    }

    #[test]
    fn a_slow_reader_skips_evicted_lines_and_counts_them() {
        let b = LogBuffer::new(4);
        b.push(false, "aa".into());
        let mut r = b.reader(None);
        for l in ["bb", "cc", "dd"] {
            b.push(false, l.into());
        }
        assert_eq!(text(r.read_now(100)), ["cc", "dd"]);
        assert_eq!(r.missed(), 2);
    }

    #[tokio::test]
    async fn read_waits_for_a_new_line() {
        let b = LogBuffer::new(1024);
        b.push(false, "old".into());
        let mut r = b.reader(Some(0));
        let writer = b.clone();
        let wait = tokio::spawn(async move { text(r.read(100).await) });
        tokio::task::yield_now().await;
        assert!(!wait.is_finished());
        writer.push(false, "new".into());
        assert_eq!(wait.await.unwrap(), ["new"]);
    }
}
