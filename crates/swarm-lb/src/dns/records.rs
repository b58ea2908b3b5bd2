//! The node's record database: every network's services and tasks, as the
//! agent learns them from its assignments. One per node, shared by every
//! sandbox's resolver; each resolver only sees the networks its sandbox
//! is attached to.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use parking_lot::RwLock;
use rand::seq::SliceRandom;

use super::answer::{Addrs, Key};
use crate::error::{LbError, Result};

/// How a service name resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolutionMode {
    /// To the service's VIP on the network.
    #[default]
    Vip,
    /// To the addresses of its tasks (DNS round-robin, shuffled).
    Dnsrr,
}

impl ResolutionMode {
    /// From the API enum.
    pub fn from_api(mode: swarm_api::v1::ResolutionMode) -> Self {
        match mode {
            swarm_api::v1::ResolutionMode::Vip => ResolutionMode::Vip,
            swarm_api::v1::ResolutionMode::Dnsrr => ResolutionMode::Dnsrr,
        }
    }
}

/// A network as the resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    /// Network id.
    pub id: String,
    /// Internal networks never forward unknown names upstream
    /// (CVE-2024-29018).
    pub internal: bool,
}

/// A service on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// Service id.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Extra names (network aliases of the service).
    pub aliases: Vec<String>,
    /// VIP or DNS round-robin.
    pub mode: ResolutionMode,
    /// The service's VIP on this network (VIP mode).
    pub vip: Option<IpAddr>,
}

/// A running task on one network. Only tasks that should receive traffic
/// (running and healthy) belong in the database: remove a task the moment
/// it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// Task id.
    pub id: String,
    /// Task name (`<service>.<slot>.<task id>` in swarm).
    pub name: String,
    /// Its service.
    pub service_id: String,
    /// Its address on the network.
    pub addr: IpAddr,
    /// Extra names (network aliases of the task).
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    Service(&'a str),
    Tasks(&'a str),
    Task(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum OwnedTarget {
    Service(String),
    Tasks(String),
    Task(String),
}

impl OwnedTarget {
    fn as_ref(&self) -> Target<'_> {
        match self {
            OwnedTarget::Service(s) => Target::Service(s),
            OwnedTarget::Tasks(s) => Target::Tasks(s),
            OwnedTarget::Task(s) => Target::Task(s),
        }
    }
}

#[derive(Debug, Default)]
struct Network {
    internal: bool,
    services: HashMap<String, ServiceRecord>,
    tasks: HashMap<String, TaskRecord>,
    service_tasks: HashMap<String, BTreeSet<String>>,
    names: HashMap<String, Vec<OwnedTarget>>,
    reverse: HashMap<IpAddr, Vec<String>>,
    /// Every name's answer, computed at write time: a query is one probe
    /// of this map, however the name resolves (service, `tasks.`, task).
    answers: HashMap<Key, Addrs>,
}

/// Normalises a DNS name: lower case, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Longest name the database holds (see `check_names`).
const MAX_NAME: usize = 253;

/// Calls `f` with the normalised form of `name` without allocating, or
/// returns `None` when the name is too long to be in the database.
fn with_key<R>(name: &str, f: impl FnOnce(&str) -> R) -> Option<R> {
    let name = name.trim_end_matches('.');
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(f(name));
    }
    let mut buf = [0u8; MAX_NAME];
    let key = buf.get_mut(..name.len())?;
    key.copy_from_slice(name.as_bytes());
    key.make_ascii_lowercase();
    // Lowercasing ASCII bytes keeps UTF-8 valid.
    std::str::from_utf8(key).ok().map(f)
}

impl Network {
    /// The names whose answer depends on service `id`: its names and
    /// their `tasks.` forms.
    fn service_keys(&self, id: &str, out: &mut Vec<String>) {
        if let Some(s) = self.services.get(id) {
            for n in Self::service_names(s) {
                out.push(normalize(n));
                out.push(normalize(&format!("tasks.{n}")));
            }
        }
    }

    /// The names whose answer depends on task `id`: its own names and
    /// its service's.
    fn task_keys(&self, id: &str, out: &mut Vec<String>) {
        if let Some(t) = self.tasks.get(id) {
            out.extend(
                std::iter::once(&t.name)
                    .chain(&t.aliases)
                    .map(|n| normalize(n)),
            );
            self.service_keys(&t.service_id, out);
        }
    }

    /// Recomputes the precomputed answers of `keys` (normalised names).
    fn refresh(&mut self, keys: Vec<String>) {
        for key in keys {
            match self.resolve(&key) {
                Some(addrs) => {
                    self.answers.insert(Key::new(&key), Addrs::from_vec(addrs));
                }
                None => {
                    self.answers.remove(key.as_str());
                }
            }
        }
    }

    fn index(&mut self, name: &str, t: OwnedTarget) {
        let v = self.names.entry(normalize(name)).or_default();
        if !v.contains(&t) {
            v.push(t);
        }
    }

    fn unindex(&mut self, name: &str, t: &OwnedTarget) {
        let key = normalize(name);
        if let Some(v) = self.names.get_mut(&key) {
            v.retain(|x| x != t);
            if v.is_empty() {
                self.names.remove(&key);
            }
        }
    }

    fn service_names(s: &ServiceRecord) -> impl Iterator<Item = &String> {
        std::iter::once(&s.name).chain(s.aliases.iter())
    }

    fn remove_service(&mut self, id: &str) {
        let Some(old) = self.services.remove(id) else {
            return;
        };
        for n in Self::service_names(&old) {
            self.unindex(n, &OwnedTarget::Service(old.id.clone()));
            self.unindex(&format!("tasks.{n}"), &OwnedTarget::Tasks(old.id.clone()));
        }
        if let Some(vip) = old.vip {
            self.unreverse(vip, &old.name);
        }
    }

    fn remove_task(&mut self, id: &str) {
        let Some(old) = self.tasks.remove(id) else {
            return;
        };
        for n in std::iter::once(&old.name).chain(old.aliases.iter()) {
            self.unindex(n, &OwnedTarget::Task(old.id.clone()));
        }
        if let Some(set) = self.service_tasks.get_mut(&old.service_id) {
            set.remove(id);
            if set.is_empty() {
                self.service_tasks.remove(&old.service_id);
            }
        }
        self.unreverse(old.addr, &old.name);
    }

    fn unreverse(&mut self, addr: IpAddr, name: &str) {
        if let Some(v) = self.reverse.get_mut(&addr) {
            v.retain(|n| n != name);
            if v.is_empty() {
                self.reverse.remove(&addr);
            }
        }
    }

    fn task_addrs(&self, service_id: &str) -> Vec<IpAddr> {
        self.service_tasks
            .get(service_id)
            .into_iter()
            .flatten()
            .filter_map(|t| self.tasks.get(t).map(|t| t.addr))
            .collect()
    }

    /// Addresses for a name, or `None` when the network does not know it.
    fn resolve(&self, name: &str) -> Option<Vec<IpAddr>> {
        let targets = self.names.get(name)?;
        // A service wins over a task of the same name.
        let pick = targets
            .iter()
            .map(OwnedTarget::as_ref)
            .min_by_key(|t| match t {
                Target::Service(_) => 0,
                Target::Tasks(_) => 1,
                Target::Task(_) => 2,
            })?;
        Some(match pick {
            Target::Service(id) => {
                let s = self.services.get(id)?;
                match (s.mode, s.vip) {
                    (ResolutionMode::Vip, Some(vip)) => vec![vip],
                    _ => self.task_addrs(id),
                }
            }
            Target::Tasks(id) => self.task_addrs(id),
            Target::Task(id) => vec![self.tasks.get(id)?.addr],
        })
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists on one of the networks; these are its addresses
    /// (possibly none of the asked family, or none at all: a service with
    /// no running task).
    Found(Vec<IpAddr>),
    /// No network of the sandbox knows the name.
    NotFound,
}

/// Every network's services and tasks. Cheap to read concurrently; every
/// write is visible to the next query (no cache, no TTL inside).
#[derive(Debug, Default)]
pub struct RecordDb {
    inner: RwLock<HashMap<String, Network>>,
}

impl RecordDb {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a network or updates its `internal` flag.
    pub fn set_network(&self, net: NetworkRecord) {
        self.inner.write().entry(net.id).or_default().internal = net.internal;
    }

    /// Removes a network and everything on it.
    pub fn remove_network(&self, id: &str) {
        self.inner.write().remove(id);
    }

    /// Adds or replaces a service on a network. Names and VIP of the
    /// previous version stop resolving at once.
    pub fn set_service(&self, network: &str, svc: ServiceRecord) -> Result<()> {
        check_names(std::iter::once(&svc.name).chain(&svc.aliases))?;
        let mut g = self.inner.write();
        let net = g
            .get_mut(network)
            .ok_or_else(|| LbError::invalid("network", format!("unknown network {network:?}")))?;
        let mut keys = Vec::new();
        net.service_keys(&svc.id, &mut keys);
        net.remove_service(&svc.id);
        for n in Network::service_names(&svc) {
            net.index(n, OwnedTarget::Service(svc.id.clone()));
            net.index(&format!("tasks.{n}"), OwnedTarget::Tasks(svc.id.clone()));
        }
        if let Some(vip) = svc.vip {
            net.reverse.entry(vip).or_default().push(svc.name.clone());
        }
        let id = svc.id.clone();
        net.services.insert(svc.id.clone(), svc);
        net.service_keys(&id, &mut keys);
        net.refresh(keys);
        Ok(())
    }

    /// Removes a service from a network, with its tasks.
    pub fn remove_service(&self, network: &str, service_id: &str) {
        let mut g = self.inner.write();
        let Some(net) = g.get_mut(network) else {
            return;
        };
        let tasks: Vec<String> = net
            .service_tasks
            .get(service_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let mut keys = Vec::new();
        net.service_keys(service_id, &mut keys);
        for t in &tasks {
            net.task_keys(t, &mut keys);
        }
        net.remove_service(service_id);
        for t in tasks {
            net.remove_task(&t);
        }
        net.refresh(keys);
    }

    /// Adds or replaces a task on a network.
    pub fn set_task(&self, network: &str, task: TaskRecord) -> Result<()> {
        check_names(std::iter::once(&task.name).chain(&task.aliases))?;
        let mut g = self.inner.write();
        let net = g
            .get_mut(network)
            .ok_or_else(|| LbError::invalid("network", format!("unknown network {network:?}")))?;
        let mut keys = Vec::new();
        net.task_keys(&task.id, &mut keys);
        net.remove_task(&task.id);
        for n in std::iter::once(&task.name).chain(task.aliases.iter()) {
            net.index(n, OwnedTarget::Task(task.id.clone()));
        }
        net.service_tasks
            .entry(task.service_id.clone())
            .or_default()
            .insert(task.id.clone());
        net.reverse
            .entry(task.addr)
            .or_default()
            .push(task.name.clone());
        let id = task.id.clone();
        net.tasks.insert(task.id.clone(), task);
        net.task_keys(&id, &mut keys);
        net.refresh(keys);
        Ok(())
    }

    /// Removes a task from a network.
    pub fn remove_task(&self, network: &str, task_id: &str) {
        if let Some(net) = self.inner.write().get_mut(network) {
            let mut keys = Vec::new();
            net.task_keys(task_id, &mut keys);
            net.remove_task(task_id);
            net.refresh(keys);
        }
    }

    /// Resolves `name` (any case, trailing dot or not) on the first of
    /// `networks` that knows it; task addresses come shuffled.
    pub fn lookup(&self, networks: &[String], name: &str) -> Lookup {
        match self.answers(networks, name) {
            Some(addrs) => {
                let mut addrs = addrs.as_slice().to_vec();
                addrs.shuffle(&mut rand::rng());
                Lookup::Found(addrs)
            }
            None => Lookup::NotFound,
        }
    }

    /// Like [`RecordDb::lookup`] without copying: the shared answer of
    /// `name` (any case, trailing dot or not) on the first of `networks`
    /// that knows it, in a fixed order (shuffle what you send).
    pub fn answers(&self, networks: &[String], name: &str) -> Option<Addrs> {
        with_key(name, |key| {
            let g = self.inner.read();
            networks
                .iter()
                .find_map(|id| g.get(id)?.answers.get(key).cloned())
        })
        .flatten()
    }

    /// The name of a task or VIP address, on the first of `networks` that
    /// has it.
    pub fn reverse(&self, networks: &[String], addr: IpAddr) -> Option<String> {
        let g = self.inner.read();
        networks.iter().find_map(|id| {
            g.get(id)
                .and_then(|n| n.reverse.get(&addr))
                .and_then(|v| v.first().cloned())
        })
    }

    /// True when a sandbox on `networks` may forward unknown names: at
    /// least one of its networks is known and not internal.
    pub fn may_forward(&self, networks: &[String]) -> bool {
        let g = self.inner.read();
        networks
            .iter()
            .any(|id| g.get(id).is_some_and(|n| !n.internal))
    }
}

fn check_names<'a>(names: impl Iterator<Item = &'a String>) -> Result<()> {
    for n in names {
        let ok = !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|l| !l.is_empty() && l.len() <= 63)
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            return Err(LbError::invalid(
                "dns name",
                format!("{n:?} is not a DNS name"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn db() -> RecordDb {
        let db = RecordDb::new();
        db.set_network(NetworkRecord {
            id: "front".into(),
            internal: false,
        });
        db.set_network(NetworkRecord {
            id: "back".into(),
            internal: true,
        });
        db.set_service(
            "front",
            ServiceRecord {
                id: "s1".into(),
                name: "web".into(),
                aliases: vec!["www".into()],
                mode: ResolutionMode::Vip,
                vip: Some(ip("10.0.0.2")),
            },
        )
        .unwrap();
        for (i, a) in ["10.0.0.3", "10.0.0.4"].iter().enumerate() {
            db.set_task(
                "front",
                TaskRecord {
                    id: format!("t{i}"),
                    name: format!("web.{}.t{i}", i + 1),
                    service_id: "s1".into(),
                    addr: ip(a),
                    aliases: vec![],
                },
            )
            .unwrap();
        }
        db
    }

    fn nets(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn sorted(l: Lookup) -> Vec<IpAddr> {
        match l {
            Lookup::Found(mut v) => {
                v.sort();
                v
            }
            Lookup::NotFound => panic!("not found"),
        }
    }

    #[test]
    fn names_resolve_like_docker() {
        let db = db();
        let f = nets(&["front"]);
        // (name, expected addresses)
        let table: &[(&str, &[&str])] = &[
            ("web", &["10.0.0.2"]),
            ("WEB.", &["10.0.0.2"]),
            ("www", &["10.0.0.2"]),
            ("tasks.web", &["10.0.0.3", "10.0.0.4"]),
            ("tasks.www", &["10.0.0.3", "10.0.0.4"]),
            ("web.1.t0", &["10.0.0.3"]),
        ];
        for (name, want) in table {
            let want: Vec<IpAddr> = want.iter().map(|a| ip(a)).collect();
            assert_eq!(sorted(db.lookup(&f, name)), want, "{name}");
        }
        assert_eq!(db.lookup(&f, "nope"), Lookup::NotFound);
        assert_eq!(db.reverse(&f, ip("10.0.0.3")).as_deref(), Some("web.1.t0"));
    }

    #[test]
    fn names_are_scoped_to_shared_networks() {
        let db = db();
        assert_eq!(db.lookup(&nets(&["back"]), "web"), Lookup::NotFound);
        assert_eq!(db.lookup(&nets(&["elsewhere"]), "web"), Lookup::NotFound);
        assert!(db.may_forward(&nets(&["back", "front"])));
        assert!(!db.may_forward(&nets(&["back"])));
        assert!(!db.may_forward(&nets(&["unknown"])));
    }

    #[test]
    fn dnsrr_and_updates_take_effect_at_once() {
        let db = db();
        let f = nets(&["front"]);
        let mut s = ServiceRecord {
            id: "s1".into(),
            name: "web".into(),
            aliases: vec![],
            mode: ResolutionMode::Dnsrr,
            vip: None,
        };
        db.set_service("front", s.clone()).unwrap();
        assert_eq!(
            sorted(db.lookup(&f, "web")),
            vec![ip("10.0.0.3"), ip("10.0.0.4")]
        );
        // the old alias is gone with the update
        assert_eq!(db.lookup(&f, "www"), Lookup::NotFound);
        db.remove_task("front", "t0");
        assert_eq!(sorted(db.lookup(&f, "web")), vec![ip("10.0.0.4")]);
        assert_eq!(db.lookup(&f, "web.1.t0"), Lookup::NotFound);
        assert_eq!(db.reverse(&f, ip("10.0.0.3")), None);
        s.name = "api".into();
        db.set_service("front", s).unwrap();
        assert_eq!(db.lookup(&f, "web"), Lookup::NotFound);
        assert_eq!(db.lookup(&f, "tasks.web"), Lookup::NotFound);
        db.remove_service("front", "s1");
        assert_eq!(db.lookup(&f, "api"), Lookup::NotFound);
        assert_eq!(db.lookup(&f, "web.2.t1"), Lookup::NotFound);
    }

    /// One write of the equivalence property below.
    #[derive(Debug, Clone)]
    enum Op {
        Service(usize, usize, bool, bool),
        RemoveService(usize),
        Task(usize, usize, usize, u8),
        RemoveTask(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..3usize, 0..4usize, any::<bool>(), any::<bool>())
                .prop_map(|(s, n, rr, alias)| Op::Service(s, n, rr, alias)),
            (0..3usize).prop_map(Op::RemoveService),
            (0..5usize, 0..3usize, 0..4usize, 1..4u8).prop_map(|(t, s, n, a)| Op::Task(t, s, n, a)),
            (0..5usize).prop_map(Op::RemoveTask),
        ]
    }

    const NAMES: [&str; 4] = ["a", "b", "c", "Tasks.a"];

    proptest::proptest! {
        /// The answers computed at write time are what resolving the
        /// name at query time gives, after any sequence of writes.
        #[test]
        fn precomputed_answers_match_resolution(ops in proptest::collection::vec(op(), 1..40)) {
            let db = RecordDb::new();
            db.set_network(NetworkRecord { id: "n".into(), internal: false });
            for op in ops {
                match op {
                    Op::Service(s, n, rr, alias) => db.set_service("n", ServiceRecord {
                        id: format!("s{s}"),
                        name: NAMES[n].into(),
                        aliases: if alias { vec!["b".into()] } else { vec![] },
                        mode: if rr { ResolutionMode::Dnsrr } else { ResolutionMode::Vip },
                        vip: (!rr).then(|| ip(&format!("10.0.1.{s}"))),
                    }).unwrap(),
                    Op::RemoveService(s) => db.remove_service("n", &format!("s{s}")),
                    Op::Task(t, s, n, a) => db.set_task("n", TaskRecord {
                        id: format!("t{t}"),
                        name: NAMES[n].into(),
                        service_id: format!("s{s}"),
                        addr: ip(&format!("10.0.2.{a}")),
                        aliases: vec![format!("task{t}")],
                    }).unwrap(),
                    Op::RemoveTask(t) => db.remove_task("n", &format!("t{t}")),
                }
                let g = db.inner.read();
                let net = &g["n"];
                let mut all: Vec<String> = NAMES.iter().map(|n| normalize(n)).collect();
                all.extend(NAMES.iter().map(|n| normalize(&format!("tasks.{n}"))));
                all.extend((0..5).map(|t| format!("task{t}")));
                for name in all {
                    let mut want = net.resolve(&name);
                    let mut got = net.answers.get(name.as_str()).map(|a| a.as_slice().to_vec());
                    if let Some(v) = want.as_mut() { v.sort() }
                    if let Some(v) = got.as_mut() { v.sort() }
                    proptest::prop_assert_eq!(got, want, "{}", name);
                }
                proptest::prop_assert!(net.answers.keys().all(|k| net.names.contains_key(k.as_str())));
            }
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let db = db();
        let mut t = TaskRecord {
            id: "x".into(),
            name: "bad name".into(),
            service_id: "s1".into(),
            addr: ip("10.0.0.9"),
            aliases: vec![],
        };
        assert!(db.set_task("front", t.clone()).is_err());
        t.name = "ok".into();
        assert!(db.set_task("nonet", t).is_err());
    }
}
