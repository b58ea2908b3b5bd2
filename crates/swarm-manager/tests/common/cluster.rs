//! Three managers in one process, and killing the leader.

use swarm_api::v1::NodeAvailability;
use swarm_manager::Manager;
use swarm_store::Store;

use super::{Dir, builder, eventually};

/// Three managers: the first creates the cluster (its node drained, so
/// tasks go to fake agents only), the others join it. Returns them once
/// all three vote.
pub async fn three_managers(tag: &str) -> (Vec<Dir>, Vec<Manager>) {
    let dirs: Vec<Dir> = (0..3).map(|i| Dir::new(&format!("{tag}{i}"))).collect();
    let first = builder(&dirs[0].0)
        .availability(NodeAvailability::Drain)
        .start()
        .await
        .unwrap();
    let token = first.join_tokens().unwrap().manager.to_string();
    let mut managers = vec![first];
    for d in &dirs[1..] {
        let m = builder(&d.0)
            .join(managers[0].addr(), token.clone())
            .start()
            .await
            .unwrap();
        managers.push(m);
    }
    eventually("three voters", || async {
        let s = managers[0].raft().status().ok()?;
        (s.voters.len() == 3 && !s.changing).then_some(())
    })
    .await;
    (dirs, managers)
}

/// The managers' addresses.
pub fn addrs(managers: &[Manager]) -> Vec<String> {
    managers.iter().map(|m| m.addr().to_string()).collect()
}

/// The index of the manager that leads (waiting for one to).
pub async fn leader(managers: &[Manager]) -> usize {
    eventually("a leader", || async {
        managers.iter().position(|m| m.raft().is_leader())
    })
    .await
}

/// Shuts the leader down; once another manager leads, returns the dead
/// leader's node id and its store (as it stood when it stopped).
pub async fn kill_leader(managers: &mut Vec<Manager>) -> (String, Store) {
    let i = leader(managers).await;
    let dead = managers.remove(i);
    let id = dead.node_id().to_string();
    let store = dead.store().clone();
    dead.shutdown().await;
    leader(managers).await;
    (id, store)
}
