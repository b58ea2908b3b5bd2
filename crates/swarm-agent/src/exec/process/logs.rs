//! A bounded in-memory buffer of a task's output lines, kept for log
//! publishing: the oldest lines go when it is full.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::exec::LogLine;

/// Longest line kept; the rest of a longer line is cut.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Output lines of one task, at most `capacity` bytes of text.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<Lines>>,
}

#[derive(Debug)]
struct Lines {
    lines: VecDeque<LogLine>,
    bytes: usize,
    capacity: usize,
    dropped: u64,
}

impl LogBuffer {
    /// A buffer holding at most `capacity` bytes of lines.
    pub fn new(capacity: usize) -> Self {
        LogBuffer {
            inner: Arc::new(Mutex::new(Lines {
                lines: VecDeque::new(),
                bytes: 0,
                capacity,
                dropped: 0,
            })),
        }
    }

    /// Appends a line, dropping the oldest ones to make room.
    pub fn push(&self, stderr: bool, mut line: String) {
        if line.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        let mut l = self.inner.lock();
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
                    l.dropped += 1;
                }
                None => break,
            }
        }
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        self.inner.lock().lines.iter().cloned().collect()
    }

    /// How many lines were dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().dropped
    }

    /// Reads `reader` line by line into the buffer until it closes.
    pub(crate) async fn follow(self, reader: impl AsyncRead + Unpin, stderr: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines_within_capacity() {
        let b = LogBuffer::new(10);
        for i in 0..6 {
            b.push(false, format!("l{i}"));
        }
        let lines: Vec<String> = b.lines().into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["l1", "l2", "l3", "l4", "l5"]);
        assert_eq!(b.dropped(), 1);
        b.push(true, "x".repeat(MAX_LINE_BYTES + 10));
        assert!(
            b.lines().is_empty(),
            "a line larger than the buffer evicts all"
        );
    }
}
