//! Scenario 4: time to mark agents down once they stop heartbeating.
//!
//! Every tenth agent goes silent at once: it sends no more heartbeats but
//! keeps its connection and streams open (a hung node, the case that only
//! heartbeats reveal). The clock runs from that moment until the store
//! holds every one of them DOWN. An agent may have sent its last heartbeat
//! just before, so the bound is the dispatcher's grace after a heartbeat:
//! period × 3 (plus the jitter it grants), checked on its monitor's tick.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::fleet::Fleet;
use crate::out;
use crate::report::{Better, Figure};

/// Silences `silent` of the fleet's agents; `period` is the dispatcher's
/// heartbeat period.
pub async fn run(
    cluster: &Cluster,
    fleet: &mut Fleet,
    agents: usize,
    silent: usize,
    period: Duration,
) -> Vec<Figure> {
    fleet.grow_to(agents).await;
    let n = fleet.len();
    let step = (n / silent.max(1)).max(1);
    let chosen: HashSet<usize> = (0..n).step_by(step).take(silent).collect();
    let (mut ids, mut others) = (Vec::new(), Vec::new());
    for (i, id) in fleet.node_ids().into_iter().enumerate() {
        if chosen.contains(&i) {
            ids.push(id);
        } else {
            others.push(id);
        }
    }
    let already = cluster.down(&ids) + cluster.down(&others);
    if already > 0 {
        out(format!("down: {already} nodes were DOWN before the test"));
    }
    let started = Instant::now();
    for &i in &chosen {
        fleet.go_silent(i);
    }
    let limit = period * 6 + Duration::from_secs(10);
    let mut first = None;
    let took = loop {
        let down = cluster.down(&ids);
        if first.is_none() && down > 0 {
            first = Some(started.elapsed());
        }
        if down == ids.len() {
            break started.elapsed();
        }
        if started.elapsed() > limit {
            out(format!("only {down} of {} down after {limit:?}", ids.len()));
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wrongly_down = cluster.down(&others);
    let p = period.as_secs_f64();
    out(format!(
        "down: {} of {n} agents silenced; first DOWN after {:.2} s, all after {:.2} s \
         (= {:.2} periods of {p:.1} s); {wrongly_down} of the {} others DOWN",
        ids.len(),
        first.unwrap_or(took).as_secs_f64(),
        took.as_secs_f64(),
        took.as_secs_f64() / p,
        others.len(),
    ));
    vec![
        Figure::new(
            format!(
                "mark {} of {n} silent agents DOWN (period {p:.1} s)",
                ids.len()
            ),
            took.as_secs_f64(),
            "s",
            Better::Lower,
        )
        .target(3.0 * p + 1.0),
        Figure::new(
            "  healthy agents wrongly marked DOWN",
            wrongly_down as f64,
            "nodes",
            Better::Lower,
        ),
    ]
}
