//! The [`LoadBalancer`] trait, and [`Balancer`], which implements it for any
//! [`Dataplane`] by keeping the desired state and handing the dataplane one
//! service's before/after at a time.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::error::{LbError, Result};
use crate::model::{Backend, Protocol, ServiceId, ServiceSpec, ServiceState};

/// Service VIPs and published ports balanced over backends.
///
/// Every method is idempotent: creating a service that exists with the
/// same spec, adding a backend twice, deleting what is gone all succeed
/// without change, so a restarted agent can replay its desired state or
/// call [`LoadBalancer::reconcile`]. A failed call changes nothing: the
/// kernel backends apply each call as one atomic transaction.
///
/// Calls block (netlink round-trips of a millisecond or so); from async
/// code use `tokio::task::spawn_blocking`.
pub trait LoadBalancer: Send + Sync {
    /// Short name of the backend (`nftables`, `ipvs`, `userspace`).
    fn kind(&self) -> &'static str;

    /// Creates the service, or updates its VIP and ports in place (its
    /// backends are kept).
    fn ensure_service(&self, spec: &ServiceSpec) -> Result<()>;

    /// Creates or replaces a service with exactly these backends, as one
    /// change (what an agent does when it learns a service whole).
    fn set_service(&self, state: &ServiceState) -> Result<()>;

    /// Deletes the service and its backends; absent is fine.
    fn delete_service(&self, id: &str) -> Result<()>;

    /// Adds a backend, or changes its weight.
    fn set_backend(&self, id: &str, backend: Backend) -> Result<()>;

    /// Removes a backend; absent is fine. No new connection goes to it.
    fn remove_backend(&self, id: &str, addr: IpAddr) -> Result<()>;

    /// Drains a backend: weight 0, so established connections carry on and
    /// no new one is sent to it.
    fn drain_backend(&self, id: &str, addr: IpAddr) -> Result<()>;

    /// The services as programmed.
    fn list(&self) -> Result<Vec<ServiceState>>;

    /// Makes the programmed state exactly `desired`: services not in it are
    /// deleted, the others created or updated.
    fn reconcile(&self, desired: &[ServiceState]) -> Result<()>;
}

/// One service's change, as a dataplane sees it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The service as programmed before, `None` when new.
    pub old: Option<&'a ServiceState>,
    /// The service as wanted, `None` when deleted.
    pub new: Option<&'a ServiceState>,
}

/// The kernel- or process-facing half of a load balancer.
///
/// A dataplane turns one service's before/after into its own operations
/// and applies them atomically; [`Balancer`] keeps the state and calls it.
/// Implement this to plug in another dataplane (eBPF, a hardware
/// balancer): the conformance tests in `tests/` take any [`LoadBalancer`].
pub trait Dataplane: Send + Sync {
    /// Short name.
    fn kind(&self) -> &'static str;

    /// Checks a service against what the dataplane can express.
    fn check(&self, state: &ServiceState) -> Result<()>;

    /// Applies one service's change. On error nothing changed.
    fn apply(&self, change: Change<'_>) -> Result<()>;

    /// Replaces everything this dataplane programmed with `all` (used by
    /// reconcile after a restart, when the old state is not known).
    fn replace_all(&self, all: &[&ServiceState]) -> Result<()>;
}

/// A [`LoadBalancer`] over a [`Dataplane`].
pub struct Balancer<D> {
    dataplane: D,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    services: BTreeMap<ServiceId, ServiceState>,
    /// Who holds each VIP and published port (conflict checks in O(1)).
    vips: HashMap<IpAddr, ServiceId>,
    published: HashMap<(Protocol, u16), ServiceId>,
    /// False until the dataplane is known to hold exactly `services`.
    synced: bool,
}

impl State {
    fn insert(&mut self, s: ServiceState) {
        self.remove(&s.spec.id);
        if let Some(vip) = s.spec.vip {
            self.vips.insert(vip, s.spec.id.clone());
        }
        for p in &s.spec.ports {
            if let Some(publ) = p.published {
                self.published
                    .insert((p.protocol, publ.port), s.spec.id.clone());
            }
        }
        self.services.insert(s.spec.id.clone(), s);
    }

    fn remove(&mut self, id: &str) {
        let Some(old) = self.services.remove(id) else {
            return;
        };
        if let Some(vip) = old.spec.vip {
            self.vips.remove(&vip);
        }
        for p in &old.spec.ports {
            if let Some(publ) = p.published {
                self.published.remove(&(p.protocol, publ.port));
            }
        }
    }

    /// Refuses a VIP or published port already used by another service.
    fn check_conflicts(&self, new: &ServiceState) -> Result<()> {
        let id = &new.spec.id;
        if let Some(vip) = new.spec.vip
            && let Some(other) = self.vips.get(&vip).filter(|o| *o != id)
        {
            return Err(LbError::invalid(
                "vip",
                format!("{vip} is used by service {other}"),
            ));
        }
        for p in &new.spec.ports {
            let Some(publ) = p.published else { continue };
            if let Some(other) = self
                .published
                .get(&(p.protocol, publ.port))
                .filter(|o| *o != id)
            {
                return Err(LbError::invalid(
                    "port",
                    format!(
                        "{}/{} is published by service {other}",
                        publ.port, p.protocol
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl<D: Dataplane> Balancer<D> {
    /// Wraps a dataplane. The first change flushes whatever an earlier
    /// process left in it unless [`LoadBalancer::reconcile`] ran first.
    pub fn new(dataplane: D) -> Self {
        Balancer {
            dataplane,
            state: Mutex::new(State::default()),
        }
    }

    /// The dataplane.
    pub fn dataplane(&self) -> &D {
        &self.dataplane
    }

    /// Reprograms the dataplane from the state this balancer holds. For
    /// when the kernel diverged behind its back (someone flushed the
    /// table): changes then fail with [`LbError::Netlink`] until this runs.
    pub fn resync(&self) -> Result<()> {
        let mut st = self.state.lock();
        st.synced = false;
        self.ensure_synced(&mut st)
    }

    fn ensure_synced(&self, st: &mut State) -> Result<()> {
        if !st.synced {
            let all: Vec<&ServiceState> = st.services.values().collect();
            self.dataplane.replace_all(&all)?;
            st.synced = true;
        }
        Ok(())
    }

    /// Applies `f` to a copy of the service and programs the difference.
    fn update(&self, id: &str, f: impl FnOnce(&mut ServiceState) -> Result<bool>) -> Result<()> {
        let mut st = self.state.lock();
        self.ensure_synced(&mut st)?;
        let old = st
            .services
            .get(id)
            .ok_or_else(|| LbError::NoService(id.to_string()))?;
        let mut new = old.clone();
        if !f(&mut new)? || &new == old {
            return Ok(());
        }
        self.dataplane.check(&new)?;
        self.dataplane.apply(Change {
            old: Some(old),
            new: Some(&new),
        })?;
        st.insert(new);
        Ok(())
    }
}

impl<D: Dataplane> LoadBalancer for Balancer<D> {
    fn kind(&self) -> &'static str {
        self.dataplane.kind()
    }

    fn ensure_service(&self, spec: &ServiceSpec) -> Result<()> {
        spec.validate()?;
        let mut st = self.state.lock();
        self.ensure_synced(&mut st)?;
        let old = st.services.get(&spec.id);
        let new = match old {
            Some(o) if &o.spec == spec => return Ok(()),
            Some(o) => ServiceState {
                spec: spec.clone(),
                backends: o.backends.clone(),
            },
            None => ServiceState::new(spec.clone()),
        };
        st.check_conflicts(&new)?;
        self.dataplane.check(&new)?;
        self.dataplane.apply(Change {
            old,
            new: Some(&new),
        })?;
        st.insert(new);
        Ok(())
    }

    fn set_service(&self, state: &ServiceState) -> Result<()> {
        state.spec.validate()?;
        for b in state.backends.values() {
            if state
                .spec
                .vip
                .is_some_and(|v| v.is_ipv4() != b.addr.is_ipv4())
            {
                return Err(LbError::invalid(
                    "backend",
                    format!("{} is not of the VIP's address family", b.addr),
                ));
            }
        }
        let mut st = self.state.lock();
        self.ensure_synced(&mut st)?;
        let old = st.services.get(&state.spec.id);
        if old == Some(state) {
            return Ok(());
        }
        st.check_conflicts(state)?;
        self.dataplane.check(state)?;
        self.dataplane.apply(Change {
            old,
            new: Some(state),
        })?;
        st.insert(state.clone());
        Ok(())
    }

    fn delete_service(&self, id: &str) -> Result<()> {
        let mut st = self.state.lock();
        self.ensure_synced(&mut st)?;
        let Some(old) = st.services.get(id) else {
            return Ok(());
        };
        self.dataplane.apply(Change {
            old: Some(old),
            new: None,
        })?;
        st.remove(id);
        Ok(())
    }

    fn set_backend(&self, id: &str, backend: Backend) -> Result<()> {
        let vip = self.state.lock().services.get(id).and_then(|s| s.spec.vip);
        if let Some(vip) = vip
            && vip.is_ipv4() != backend.addr.is_ipv4()
        {
            return Err(LbError::invalid(
                "backend",
                format!("{} is not of the VIP's address family", backend.addr),
            ));
        }
        self.update(id, |s| {
            s.backends.insert(backend.addr, backend);
            Ok(true)
        })
    }

    fn remove_backend(&self, id: &str, addr: IpAddr) -> Result<()> {
        self.update(id, |s| Ok(s.backends.remove(&addr).is_some()))
    }

    fn drain_backend(&self, id: &str, addr: IpAddr) -> Result<()> {
        self.update(id, |s| match s.backends.get_mut(&addr) {
            Some(b) => {
                b.weight = 0;
                Ok(true)
            }
            None => Err(LbError::NoBackend {
                service: id.to_string(),
                addr,
            }),
        })
    }

    fn list(&self) -> Result<Vec<ServiceState>> {
        Ok(self.state.lock().services.values().cloned().collect())
    }

    fn reconcile(&self, desired: &[ServiceState]) -> Result<()> {
        let mut next = State::default();
        for s in desired {
            s.spec.validate()?;
            self.dataplane.check(s)?;
            next.check_conflicts(s)?;
            if next.services.contains_key(&s.spec.id) {
                return Err(LbError::invalid(
                    "service id",
                    format!("{:?} twice", s.spec.id),
                ));
            }
            next.insert(s.clone());
        }
        let mut st = self.state.lock();
        if !st.synced {
            let all: Vec<&ServiceState> = next.services.values().collect();
            self.dataplane.replace_all(&all)?;
            next.synced = true;
            *st = next;
            return Ok(());
        }
        let wanted = next.services;
        // Deletions first, so a VIP or port moving between services is free.
        let gone: Vec<ServiceId> = st
            .services
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for id in gone {
            if let Some(old) = st.services.get(&id) {
                self.dataplane.apply(Change {
                    old: Some(old),
                    new: None,
                })?;
            }
            st.remove(&id);
        }
        for (id, new) in wanted {
            let old = st.services.get(&id);
            if old == Some(&new) {
                continue;
            }
            self.dataplane.apply(Change {
                old,
                new: Some(&new),
            })?;
            st.insert(new);
        }
        Ok(())
    }
}
