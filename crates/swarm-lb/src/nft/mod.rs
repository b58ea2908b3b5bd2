//! The nftables dataplane: one table per namespace, DNAT through maps.
//!
//! Layout (see [`skeleton`](self) for the script): a VIP map keyed by
//! `VIP . slot` and a published-port map keyed by `proto . port . slot`,
//! looked up with `numgen inc mod <slots>`, so a service's backends are
//! chosen round-robin from its slot table ([`crate::slots`]). The table's
//! rules never mention a service: creating, changing or deleting one
//! adds and removes only that service's map elements, in one atomic
//! nf_tables transaction sent over netlink, so a change costs the same
//! with 10 or 10,000 services. (Per-service chains reached by a verdict
//! map were measured first: every commit re-validates the chain graph,
//! about 100 ms at 10k services.)
//!
//! The table is created with `nft -f` (maps need `typeof`, which the JSON
//! input of nft 1.0.6 lacks) and listed with `nft -j` through the
//! `nftables` crate. Tables of other owners in the namespace (the overlay
//! driver's) are never touched.
//!
//! IPv4 and IPv6 each have their table (families `ip` and `ip6`, same
//! name and layout); a service's backends of each family get their own
//! slot table. A service balances over at most `slots` backends per
//! family (64 by default).
//!
//! Removing a backend also deletes (right after the change, on a
//! background thread) the conntrack entries of its UDP flows through this
//! table (a client sending from the same port would otherwise
//! stay pinned to it); TCP connections are left to end by themselves, and
//! draining (weight 0) keeps every established flow.

mod conntrack;
mod elements;
mod netlink;
mod skeleton;

use std::io::Write as _;
use std::process::{Command, Stdio};

use parking_lot::Mutex;

use crate::balancer::{Balancer, Change, Dataplane};
use crate::error::{LbError, Result};
use crate::model::ServiceState;
use crate::netns::NetNs;
use crate::nl::NlSocket;
use elements::{Delta, SetName};

/// Default table name.
pub const DEFAULT_TABLE: &str = "swarm-lb";
/// Default number of slots per service (the round-robin table size).
pub const DEFAULT_SLOTS: u32 = 64;
/// Default conntrack mark bit set on routing-mesh connections.
pub const DEFAULT_MESH_MARK: u32 = 0x0100_0000;

/// Settings of an nftables load balancer.
#[derive(Debug, Clone)]
pub struct NftConfig {
    /// Namespace to program.
    pub netns: NetNs,
    /// Table name (family `ip`), unique in the namespace.
    pub table: String,
    /// Slots per service: the most backends one service can have, and the
    /// granularity of weights. Changing it rebuilds the table.
    pub slots: u32,
    /// Conntrack mark bit for connections to source-NAT (routing mesh).
    pub mesh_mark: u32,
}

impl NftConfig {
    /// Defaults for a namespace.
    pub fn new(netns: NetNs) -> Self {
        NftConfig {
            netns,
            table: DEFAULT_TABLE.to_string(),
            slots: DEFAULT_SLOTS,
            mesh_mark: DEFAULT_MESH_MARK,
        }
    }
}

/// The nftables [`Dataplane`].
pub struct NftDataplane {
    cfg: NftConfig,
    sock: Mutex<NlSocket>,
    /// Feeds the flow cleaner thread (dropping it stops the thread).
    cleaner: Mutex<std::sync::mpsc::Sender<Vec<conntrack::FlowFilter>>>,
}

/// A [`crate::LoadBalancer`] programming nftables.
pub type NftBalancer = Balancer<NftDataplane>;

impl NftBalancer {
    /// Creates (or adopts) the table in the namespace.
    pub fn open(cfg: NftConfig) -> Result<Self> {
        Ok(Balancer::new(NftDataplane::open(cfg)?))
    }
}

impl NftDataplane {
    /// Creates the table unless one with the same layout exists, and opens
    /// the netlink socket in the namespace.
    pub fn open(cfg: NftConfig) -> Result<Self> {
        if !(1..=4096).contains(&cfg.slots) {
            return Err(LbError::invalid("slots", "must be 1..=4096"));
        }
        if cfg.mesh_mark.count_ones() != 1 {
            return Err(LbError::invalid("mesh_mark", "must be a single bit"));
        }
        if cfg.table.is_empty()
            || !cfg
                .table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(LbError::invalid("table", "must be [A-Za-z0-9_-]+"));
        }
        let sock = cfg.netns.run(|| -> Result<NlSocket> {
            for family in ["ip", "ip6"] {
                let (exists, current) = table_state(family, &cfg.table, cfg.slots)?;
                if !current {
                    nft_script(&skeleton::script(
                        family,
                        &cfg.table,
                        cfg.slots,
                        cfg.mesh_mark,
                        exists,
                    ))?;
                }
            }
            NlSocket::open(netlink::NETLINK_NETFILTER)
        })??;
        let cleaner = conntrack::spawn_cleaner(&cfg.netns)?;
        Ok(NftDataplane {
            cfg,
            sock: Mutex::new(sock),
            cleaner: Mutex::new(cleaner),
        })
    }

    /// The settings.
    pub fn config(&self) -> &NftConfig {
        &self.cfg
    }

    /// Both tables (`ip` and `ip6`) as `nft list table` prints them (for
    /// diagnostics; slow with many services).
    pub fn dump(&self) -> Result<String> {
        let table = self.cfg.table.clone();
        self.cfg.netns.run(move || {
            let mut text = String::new();
            for family in ["ip", "ip6"] {
                let out = Command::new("nft")
                    .args(["list", "table", family, &table])
                    .output()
                    .map_err(|e| LbError::io("running nft", e))?;
                if !out.status.success() {
                    return Err(LbError::Nft(
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    ));
                }
                text.push_str(&String::from_utf8_lossy(&out.stdout));
            }
            Ok(text)
        })?
    }

    /// Deletes the table (all services) from the namespace.
    pub fn remove_table(&self) -> Result<()> {
        let table = self.cfg.table.clone();
        self.cfg.netns.run(move || {
            nft_script(&format!(
                "table ip {table} {{}}\ndelete table ip {table}\ntable ip6 {table} {{}}\ndelete table ip6 {table}\n"
            ))
        })?
    }

    fn send(&self, delta: &Delta, flush: &[SetName], context: &str) -> Result<()> {
        if delta.is_empty() && flush.is_empty() {
            return Ok(());
        }
        let msgs = netlink::delta_messages(&self.cfg.table, delta, flush);
        tracing::debug!(context, ops = delta.ops(), sets = ?netlink::touched(delta), "nft elements");
        netlink::send_batches(&mut self.sock.lock(), msgs, context)
    }
}

impl Dataplane for NftDataplane {
    fn kind(&self) -> &'static str {
        "nftables"
    }

    fn check(&self, state: &ServiceState) -> Result<()> {
        let v4 = state.active().filter(|b| b.addr.is_ipv4()).count();
        let active = v4.max(state.active().count() - v4);
        if active > self.cfg.slots as usize {
            return Err(LbError::invalid(
                "backends",
                format!(
                    "{active} active backends, more than the {} slots",
                    self.cfg.slots
                ),
            ));
        }
        Ok(())
    }

    fn apply(&self, change: Change<'_>) -> Result<()> {
        let empty = Default::default();
        let old = change.old.map(|s| elements::elements(s, self.cfg.slots));
        let new = change.new.map(|s| elements::elements(s, self.cfg.slots));
        let d = elements::delta(
            old.as_ref().unwrap_or(&empty),
            new.as_ref().unwrap_or(&empty),
        );
        let id = change
            .new
            .or(change.old)
            .map(|s| s.spec.id.as_str())
            .unwrap_or("");
        self.send(&d, &[], &format!("programming service {id}"))?;
        if let Some(old) = change.old {
            let filters = conntrack::filters_for(old, change.new);
            if !filters.is_empty() {
                // Off the change path: listing conntrack walks the
                // kernel's whole (global) flow table, ~20 ms here.
                let _ = self.cleaner.lock().send(filters);
            }
        }
        Ok(())
    }

    fn replace_all(&self, all: &[&ServiceState]) -> Result<()> {
        let empty = Default::default();
        let mut merged = std::collections::BTreeMap::new();
        for s in all {
            merged.extend(elements::elements(s, self.cfg.slots));
        }
        let d = elements::delta(&empty, &merged);
        self.send(&d, &SetName::ALL, "reloading all services")
    }
}

/// Whether the table exists, and whether it has the current layout.
fn table_state(family: &str, table: &str, slots: u32) -> Result<(bool, bool)> {
    let json = nftables::helper::get_current_ruleset_raw(
        nftables::helper::DEFAULT_NFT,
        ["list", "chains", family],
    )
    .map_err(|e| LbError::Nft(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| LbError::Nft(format!("unreadable nft -j output: {e}")))?;
    let marker = skeleton::marker(slots);
    let mut exists = false;
    let mut current = false;
    for item in v
        .get("nftables")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
    {
        let Some(chain) = item.get("chain") else {
            continue;
        };
        if chain.get("table").and_then(|t| t.as_str()) == Some(table) {
            exists = true;
            if chain.get("name").and_then(|n| n.as_str()) == Some(marker.as_str()) {
                current = true;
            }
        }
    }
    Ok((exists, current))
}

/// Runs an `nft -f -` script in the calling thread's namespace.
pub(crate) fn nft_script(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LbError::io("running nft (is the nftables package installed?)", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| LbError::io("writing to nft", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LbError::io("waiting for nft", e))?;
    if !out.status.success() {
        return Err(LbError::Nft(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(())
}
