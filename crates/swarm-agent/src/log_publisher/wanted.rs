//! What one log subscription asks of this node, as pure functions: which
//! of its tasks are selected, which lines of them, and how they are cut
//! into messages.

use std::collections::HashSet;
use std::time::SystemTime;

use swarm_api::v1::{LogContext, LogMessage, LogStream, SubscriptionMessage, Timestamp};

use crate::exec::LogLine;

/// Most bytes of line text in one published message (gRPC messages are
/// limited to 4 MiB by default).
pub(crate) const MAX_BATCH_BYTES: usize = 512 * 1024;

/// A subscription, as this node serves it.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    services: HashSet<String>,
    tasks: HashSet<String>,
    /// The subscription selects every task of this node.
    whole_node: bool,
    node_id: String,
    /// Keep publishing new lines until the manager closes it.
    pub(crate) follow: bool,
    /// Lines of each task published first (`None`: all kept).
    tail: Option<usize>,
    since: Option<SystemTime>,
    stdout: bool,
    stderr: bool,
}

impl Wanted {
    /// What `sub` asks of the node `node_id`.
    pub(crate) fn new(sub: &SubscriptionMessage, node_id: &str) -> Self {
        let selector = sub.selector.clone().unwrap_or_default();
        let options = sub.options.clone().unwrap_or_default();
        let streams: Vec<LogStream> = options.streams().collect();
        let wants = |s: LogStream| streams.is_empty() || streams.contains(&s);
        Wanted {
            services: selector.service_ids.into_iter().collect(),
            tasks: selector.task_ids.into_iter().collect(),
            whole_node: selector.node_ids.iter().any(|n| n == node_id),
            node_id: node_id.to_string(),
            follow: options.follow,
            tail: usize::try_from(options.tail).ok(),
            since: options.since.map(|t| t.to_system_time()),
            stdout: wants(LogStream::Stdout),
            stderr: wants(LogStream::Stderr),
        }
    }

    /// True when the task with `ctx` is selected.
    pub(crate) fn selects(&self, ctx: &LogContext) -> bool {
        self.whole_node
            || self.tasks.contains(&ctx.task_id)
            || self.services.contains(&ctx.service_id)
    }

    /// The message for `line` of the task with `ctx`, unless the
    /// subscription leaves it out (stream, time).
    pub(crate) fn message(&self, ctx: &LogContext, line: LogLine) -> Option<LogMessage> {
        let wanted = if line.stderr {
            self.stderr
        } else {
            self.stdout
        };
        if !wanted || self.since.is_some_and(|s| line.timestamp < s) {
            return None;
        }
        Some(LogMessage {
            context: Some(LogContext {
                node_id: self.node_id.clone(),
                ..ctx.clone()
            }),
            timestamp: Some(Timestamp::from(line.timestamp)),
            stream: if line.stderr {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            }
            .into(),
            data: line.line.into_bytes(),
        })
    }

    /// The messages of a task's backlog (every line kept, oldest first):
    /// the last `tail` of the lines the subscription wants.
    pub(crate) fn backlog(&self, ctx: &LogContext, lines: Vec<LogLine>) -> Vec<LogMessage> {
        let mut out: Vec<LogMessage> = lines
            .into_iter()
            .filter_map(|l| self.message(ctx, l))
            .collect();
        if let Some(n) = self.tail {
            out.drain(..out.len().saturating_sub(n));
        }
        out
    }
}

/// Cuts `messages` into batches of at most [`MAX_BATCH_BYTES`] of text
/// (a longer single line goes alone), keeping their order.
pub(crate) fn batches(messages: Vec<LogMessage>) -> Vec<Vec<LogMessage>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for m in messages {
        if !batch.is_empty() && bytes + m.data.len() > MAX_BATCH_BYTES {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += m.data.len();
        batch.push(m);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use swarm_api::v1::{LogSelector, LogSubscriptionOptions};

    fn sub(selector: LogSelector, options: LogSubscriptionOptions) -> SubscriptionMessage {
        SubscriptionMessage {
            id: "sub".into(),
            selector: Some(selector),
            options: Some(options),
            close: false,
        }
    }

    fn ctx(service: &str, task: &str) -> LogContext {
        LogContext {
            service_id: service.into(),
            node_id: String::new(),
            task_id: task.into(),
        }
    }

    fn line(text: &str, stderr: bool, at: SystemTime) -> LogLine {
        LogLine {
            timestamp: at,
            stderr,
            line: text.into(),
        }
    }

    #[test]
    fn selection_by_service_task_or_this_node() {
        let by = |selector| Wanted::new(&sub(selector, Default::default()), "me");
        let service = by(LogSelector {
            service_ids: vec!["s1".into()],
            ..Default::default()
        });
        let task = by(LogSelector {
            task_ids: vec!["t2".into()],
            ..Default::default()
        });
        let node = by(LogSelector {
            node_ids: vec!["me".into()],
            ..Default::default()
        });
        let other = by(LogSelector {
            node_ids: vec!["someone-else".into()],
            ..Default::default()
        });
        let table = [
            // (wanted, service, task, selected)
            (&service, "s1", "t1", true),
            (&service, "s2", "t2", false),
            (&task, "s1", "t1", false),
            (&task, "s2", "t2", true),
            (&node, "s3", "t3", true),
            (&other, "s3", "t3", false),
        ];
        for (w, s, t, want) in table {
            assert_eq!(w.selects(&ctx(s, t)), want, "{s}/{t} by {w:?}");
        }
    }

    #[test]
    fn backlog_keeps_the_tail_of_the_wanted_lines() {
        let now = SystemTime::now();
        let old = now - Duration::from_secs(60);
        let lines = vec![
            line("a", false, old),
            line("b", true, now),
            line("c", false, now),
            line("d", true, now),
            line("e", false, now),
        ];
        let text = |w: &Wanted| -> Vec<String> {
            w.backlog(&ctx("s", "t"), lines.clone())
                .into_iter()
                .map(|m| String::from_utf8(m.data).unwrap())
                .collect()
        };
        let with = |options| Wanted::new(&sub(LogSelector::default(), options), "me");
        let table: [(LogSubscriptionOptions, &[&str]); 5] = [
            (
                LogSubscriptionOptions {
                    tail: -1,
                    ..Default::default()
                },
                &["a", "b", "c", "d", "e"],
            ),
            (
                LogSubscriptionOptions {
                    tail: 2,
                    ..Default::default()
                },
                &["d", "e"],
            ),
            (LogSubscriptionOptions::default(), &[]),
            (
                LogSubscriptionOptions {
                    tail: 2,
                    streams: vec![LogStream::Stdout.into()],
                    ..Default::default()
                },
                &["c", "e"],
            ),
            (
                LogSubscriptionOptions {
                    tail: -1,
                    since: Some(Timestamp::from(now - Duration::from_secs(1))),
                    streams: vec![LogStream::Stderr.into()],
                    ..Default::default()
                },
                &["b", "d"],
            ),
        ];
        for (options, want) in table {
            assert_eq!(text(&with(options.clone())), want, "{options:?}");
        }
    }

    #[test]
    fn messages_carry_this_node_stream_and_time() {
        let w = Wanted::new(&sub(LogSelector::default(), Default::default()), "me");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let m = w.message(&ctx("s", "t"), line("x", true, at)).unwrap();
        let c = m.context.clone().unwrap();
        assert_eq!(
            (
                c.service_id.as_str(),
                c.node_id.as_str(),
                c.task_id.as_str()
            ),
            ("s", "me", "t")
        );
        assert_eq!(m.stream(), LogStream::Stderr);
        assert_eq!(m.timestamp.unwrap().to_system_time(), at);
    }

    #[test]
    fn batches_stay_under_the_size_limit_in_order() {
        let m = |n: usize| LogMessage {
            data: vec![b'x'; n],
            ..Default::default()
        };
        let half = MAX_BATCH_BYTES / 2;
        let got = batches(vec![m(half), m(half), m(1), m(MAX_BATCH_BYTES * 2), m(1)]);
        let sizes: Vec<Vec<usize>> = got
            .iter()
            .map(|b| b.iter().map(|m| m.data.len()).collect())
            .collect();
        assert_eq!(
            sizes,
            [
                vec![half, half],
                vec![1],
                vec![MAX_BATCH_BYTES * 2],
                vec![1]
            ]
        );
        assert!(batches(Vec::new()).is_empty());
    }
}
