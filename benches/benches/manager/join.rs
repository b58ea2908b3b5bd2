//! Joining many nodes through the manager's real CA: each node runs the
//! whole join of swarm-pki (root fetched and pinned by the token's digest,
//! a fresh key and CSR, the certificate issued by the `NodeCa` service and
//! the node recorded in the store through raft), many joins at once.

use std::time::{Duration, Instant};

use futures::StreamExt;
use swarm_pki::{JoinOptions, JoinToken, NodeTls};

/// A joined node.
pub struct Joined {
    /// Its node id.
    pub node_id: String,
    /// Its TLS identity.
    pub tls: NodeTls,
}

/// Joins `n` worker nodes, `parallel` at a time. Returns them and the time
/// it took.
pub async fn join_many(
    addr: &str,
    token: &JoinToken,
    n: usize,
    parallel: usize,
) -> (Vec<Joined>, Duration) {
    let started = Instant::now();
    let options = JoinOptions::default();
    let joined: Vec<Joined> = futures::stream::iter(0..n)
        .map(|_| {
            let options = options.clone();
            async move {
                let mut attempt = 0;
                loop {
                    match swarm_pki::join(addr, token, &options).await {
                        Ok(enrollment) => {
                            let node_id = enrollment.credentials.identity().node_id.clone();
                            let tls = NodeTls::new(enrollment).expect("TLS from an enrollment");
                            return Joined { node_id, tls };
                        }
                        // Joins are retried, as a node's operator would;
                        // a bench that cannot join at all stops.
                        Err(e) if attempt < 5 => {
                            attempt += 1;
                            tracing_less_warn(&e.to_string());
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(e) => panic!("join failed 6 times: {e}"),
                    }
                }
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    (joined, started.elapsed())
}

#[allow(clippy::print_stderr, reason = "bench diagnostics")]
fn tracing_less_warn(e: &str) {
    eprintln!("join failed, retrying: {e}");
}
