//! An in-process cluster of managers over real loopback gRPC.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a test harness module: each test file uses a different part"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use swarm_api::v1::{Annotations, Config, ConfigSpec};
use swarm_raft::testing::ScratchDir;
use swarm_raft::{Faults, NodeId, RaftConfig, RaftNode, RaftNodeBuilder, TcpConnector};
use swarm_store::{Store, StoreError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One manager: its store, raft member and gRPC server.
pub struct Manager {
    pub node: RaftNode,
    pub store: Store,
    pub addr: String,
    pub dir: PathBuf,
    server: JoinHandle<()>,
}

pub struct Cluster {
    pub managers: BTreeMap<NodeId, Manager>,
    pub stopped: BTreeMap<NodeId, (String, PathBuf)>,
    pub faults: Faults,
    pub config: RaftConfig,
    root: ScratchDir,
    next_dir: u32,
}

pub const WAIT: Duration = Duration::from_secs(30);

async fn serve(node: &RaftNode, listener: TcpListener) -> JoinHandle<()> {
    let router = tonic::transport::Server::builder()
        .add_service(node.raft_service())
        .add_service(node.membership_service());
    // Small replies must not wait for Nagle's algorithm.
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    });
    tokio::spawn(async move {
        let _ = router.serve_with_incoming(incoming).await;
    })
}

async fn start_member(
    id: NodeId,
    listener: TcpListener,
    dir: PathBuf,
    config: &RaftConfig,
    faults: &Faults,
) -> anyhow::Result<Manager> {
    let addr = listener.local_addr()?.to_string();
    let store = Store::new();
    let node = RaftNodeBuilder::new(
        id,
        addr.clone(),
        &dir,
        store.clone(),
        Arc::new(TcpConnector::default()),
    )
    .config(config.clone())
    .faults(faults.clone())
    .start()
    .await?;
    store.set_proposer(Some(Box::new(node.proposer())));
    let server = serve(&node, listener).await;
    Ok(Manager {
        node,
        store,
        addr,
        dir,
        server,
    })
}

/// Logs to stderr when RUST_LOG is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Cluster::with_config(n, RaftConfig::fast()).await
    }

    pub async fn with_config(n: usize, config: RaftConfig) -> Cluster {
        init_logs();
        let mut c = Cluster {
            managers: BTreeMap::new(),
            stopped: BTreeMap::new(),
            faults: Faults::new(),
            config,
            root: ScratchDir::new("cluster"),
            next_dir: 0,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dir = c.new_dir();
        let first = start_member(1, listener, dir, &c.config, &c.faults)
            .await
            .unwrap();
        first.node.bootstrap().await.unwrap();
        first.node.wait_for_leader(WAIT).await.unwrap();
        c.managers.insert(1, first);
        for _ in 1..n {
            c.add_manager().await;
        }
        c.wait_voters(n).await;
        c
    }

    fn new_dir(&mut self) -> PathBuf {
        self.next_dir += 1;
        self.root.path().join(format!("m{}", self.next_dir))
    }

    /// Joins a new manager through the leader; returns its id.
    pub async fn add_manager(&mut self) -> NodeId {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let leader = self.leader().await;
        let (id, _) = self.managers[&leader].node.join(&addr).await.unwrap();
        let dir = self.new_dir();
        let m = start_member(id, listener, dir, &self.config, &self.faults)
            .await
            .unwrap();
        self.managers.insert(id, m);
        id
    }

    /// Waits until the leader's configuration is `n` voters, with no
    /// change under way (during one, a quorum of the old voters is needed
    /// too, so isolating one of them could stall every write).
    pub async fn wait_voters(&self, n: usize) {
        eventually("voters", || async {
            let leader = self.leader_now()?;
            let s = self.managers[&leader].node.status().ok()?;
            (s.voters.len() == n && s.learners.is_empty() && !s.changing).then_some(())
        })
        .await;
    }

    /// The leader all running managers agree on.
    pub fn leader_now(&self) -> Option<NodeId> {
        let mut leader = None;
        for (id, m) in &self.managers {
            let s = m.node.status().ok()?;
            if s.state == swarm_raft::ServerState::Leader {
                if leader.is_some() {
                    return None;
                }
                leader = Some(*id);
            }
        }
        let l = leader?;
        self.managers
            .values()
            .all(|m| m.node.status().ok().and_then(|s| s.leader) == Some(l))
            .then_some(l)
    }

    /// The running managers other than `leader`.
    pub fn followers(&self, leader: NodeId) -> Vec<NodeId> {
        self.managers
            .keys()
            .copied()
            .filter(|id| *id != leader)
            .collect()
    }

    pub async fn leader(&self) -> NodeId {
        eventually("a leader", || async { self.leader_now() }).await
    }

    /// Stops a manager abruptly: its server and raft instance go away
    /// without any hand-over; its directory stays.
    pub async fn kill(&mut self, id: NodeId) {
        let m = self.managers.remove(&id).unwrap();
        m.server.abort();
        m.node.shutdown().await;
        self.stopped.insert(id, (m.addr, m.dir));
    }

    /// Cuts a manager's power: it stops abruptly (see [`Cluster::kill`])
    /// and its log loses what no finished sync covered. Returns the bytes
    /// lost.
    pub async fn power_cut(&mut self, id: NodeId) -> u64 {
        let m = self.managers.remove(&id).unwrap();
        let extent = m.node.cut_power();
        m.server.abort();
        m.node.shutdown().await;
        self.stopped.insert(id, (m.addr.clone(), m.dir.clone()));
        drop(m);
        extent.map_or(0, |e| swarm_raft::testing::lose_unsynced(&e).unwrap())
    }

    pub async fn restart(&mut self, id: NodeId) {
        self.try_restart(id).await.unwrap();
    }

    /// Restarts a stopped manager; if it refuses to start, it stays
    /// stopped and the error is returned.
    pub async fn try_restart(&mut self, id: NodeId) -> anyhow::Result<()> {
        let (addr, dir) = self.stopped.remove(&id).unwrap();
        let listener = eventually("port", || async { TcpListener::bind(&addr).await.ok() }).await;
        match start_member(id, listener, dir.clone(), &self.config, &self.faults).await {
            Ok(m) => {
                self.managers.insert(id, m);
                Ok(())
            }
            Err(e) => {
                self.stopped.insert(id, (addr, dir));
                Err(e)
            }
        }
    }

    /// Writes `key = value` through any manager that takes it.
    pub async fn write(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let leader = self
            .leader_now()
            .unwrap_or(*self.managers.keys().next().unwrap());
        put(&self.managers[&leader].store, key, value).await
    }

    /// Waits until every running manager holds the same store contents.
    pub async fn converged(&self) -> Vec<(String, String)> {
        eventually("convergence", || async {
            let contents: Vec<_> = self.managers.values().map(|m| dump(&m.store)).collect();
            contents
                .windows(2)
                .all(|w| w[0] == w[1])
                .then(|| contents[0].clone())
        })
        .await
    }
}

/// Creates or replaces a register.
pub async fn put(store: &Store, key: &str, value: &str) -> Result<(), StoreError> {
    store
        .update(|tx| {
            let obj = Config {
                id: key.into(),
                spec: Some(ConfigSpec {
                    annotations: Some(Annotations {
                        name: key.into(),
                        ..Default::default()
                    }),
                    data: value.as_bytes().to_vec(),
                }),
                ..Default::default()
            };
            match tx.get::<Config>(key) {
                Some(old) => tx
                    .update(Config {
                        meta: old.meta,
                        ..obj
                    })
                    .map(drop),
                None => tx.create(obj).map(drop),
            }
        })
        .await
}

pub fn get(store: &Store, key: &str) -> Option<String> {
    store
        .view()
        .get::<Config>(key)
        .map(|c| String::from_utf8_lossy(&c.spec.as_ref().unwrap().data).into_owned())
}

pub fn dump(store: &Store) -> Vec<(String, String)> {
    store
        .view()
        .all::<Config>()
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                String::from_utf8_lossy(&c.spec.as_ref().unwrap().data).into_owned(),
            )
        })
        .collect()
}

/// Polls `f` until it gives a value, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
