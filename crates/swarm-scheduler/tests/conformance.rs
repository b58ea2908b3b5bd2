//! The shipped schedulers pass the conformance suite.

use swarm_scheduler::{Binpack, ClusterScheduler, conformance};

#[test]
fn spread_conforms() {
    if let Err(v) = conformance::check_all(ClusterScheduler::new) {
        panic!("{v}");
    }
}

#[test]
fn binpack_conforms() {
    if let Err(v) = conformance::check_all(|| ClusterScheduler::builder().policy(Binpack).build()) {
        panic!("{v}");
    }
}
