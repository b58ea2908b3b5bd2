//! Ages as the docker CLI writes them: `5 seconds ago`, `About an hour ago`.

use std::time::{Duration, SystemTime};

use swarm_api::v1::Timestamp;

/// A duration in docker's words (`Less than a second`, `3 minutes`,
/// `About an hour`, `2 days`).
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", s / 60),
        3600..7200 => "About an hour".into(),
        7200..172_800 => format!("{} hours", s / 3600),
        172_800..1_209_600 => format!("{} days", s / 86_400),
        1_209_600..5_184_000 => format!("{} weeks", s / 604_800),
        _ => format!("{} months", s / 2_592_000),
    }
}

/// How long before `now` the timestamp was, as `… ago` (empty when unset).
pub fn ago(t: Option<&Timestamp>, now: SystemTime) -> String {
    match t {
        Some(t) => {
            let age = now
                .duration_since(t.to_system_time())
                .unwrap_or(Duration::ZERO);
            format!("{} ago", human_duration(age))
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_wording() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (90, "About a minute"),
            (600, "10 minutes"),
            (3700, "About an hour"),
            (3 * 3600, "3 hours"),
            (3 * 86_400, "3 days"),
        ];
        for (secs, text) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), text);
        }
    }
}
