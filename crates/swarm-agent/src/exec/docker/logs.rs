//! A container's output, followed from the engine's log driver into the
//! task's [`LogBuffer`] line by line.
//!
//! The engine keeps a container's output from its start, so following
//! from the beginning after `start` (or after an agent restart) misses
//! nothing; the stream ends when the container stops.

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;

use super::engine;
use crate::exec::process::{LogBuffer, MAX_LINE_BYTES};

/// Cuts a byte stream into lines (without `\n` or `\r\n`). A line longer
/// than [`MAX_LINE_BYTES`] is cut there.
#[derive(Debug, Default)]
pub(super) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// The lines completed by `bytes`.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(self.take());
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE_BYTES {
                    lines.push(self.take());
                }
            }
        }
        lines
    }

    /// What is left without a newline at the end of the stream.
    pub(super) fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        line
    }
}

/// Follows the output of container `id` into `buffer` until the
/// container stops (or the engine goes away).
pub(super) async fn follow(docker: Docker, id: String, buffer: LogBuffer) {
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(&id, Some(options));
    let mut out = LineSplitter::default();
    let mut err = LineSplitter::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(LogOutput::StdErr { message }) => {
                for line in err.feed(&message) {
                    buffer.push(true, line);
                }
            }
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                for line in out.feed(&message) {
                    buffer.push(false, line);
                }
            }
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => {
                tracing::warn!(container = %id, error = %engine::reason(&e), "reading the container's output failed");
                break;
            }
        }
    }
    if let Some(line) = out.finish() {
        buffer.push(false, line);
    }
    if let Some(line) = err.finish() {
        buffer.push(true, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut s = LineSplitter::default();
        assert_eq!(s.feed(b"hel"), Vec::<String>::new());
        assert_eq!(s.feed(b"lo\r\nwor"), ["hello"]);
        assert_eq!(s.feed(b"ld\n\n"), ["world", ""]);
        assert_eq!(s.feed(b"tail"), Vec::<String>::new());
        assert_eq!(s.finish().as_deref(), Some("tail"));
        assert_eq!(s.finish(), None);
        let long = vec![b'x'; MAX_LINE_BYTES + 3];
        let lines = s.feed(&long);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(s.finish().as_deref(), Some("xxx"));
    }
}
