//! A conformance suite for [`LoadBalancer`] implementations: the state
//! semantics every dataplane shares (idempotence, refused input changes
//! nothing, list and reconcile). A third-party dataplane proves itself by
//! running [`check_state_semantics`] against a fresh instance; traffic
//! checks need a topology and live in this crate's `tests/`.

use std::net::IpAddr;

use crate::balancer::LoadBalancer;
use crate::error::LbError;
use crate::model::{Backend, PortSpec, Protocol, ServiceSpec, ServiceState};

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn spec(id: &str, vip: IpAddr) -> ServiceSpec {
    ServiceSpec {
        id: id.into(),
        vip: Some(vip),
        ports: vec![PortSpec {
            protocol: Protocol::Tcp,
            target_port: 8080,
            published: None,
        }],
    }
}

fn ids(lb: &dyn LoadBalancer) -> Result<Vec<String>, String> {
    Ok(lb
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|s| s.spec.id)
        .collect())
}

/// Runs the suite against a fresh, empty load balancer, with two VIPs and
/// three backend addresses of the same family. Returns the first
/// violation.
pub fn check_state_semantics(
    lb: &dyn LoadBalancer,
    vips: [IpAddr; 2],
    backends: [IpAddr; 3],
) -> Result<(), String> {
    let e = |x: LbError| x.to_string();
    let [va, vb] = vips;
    let [b0, b1, b2] = backends;
    lb.reconcile(&[]).map_err(e)?;
    ensure!(ids(lb)?.is_empty(), "reconcile(&[]) left services");

    lb.ensure_service(&spec("a", va)).map_err(e)?;
    lb.ensure_service(&spec("a", va)).map_err(e)?;
    ensure!(ids(lb)? == ["a"], "ensure_service twice: {:?}", ids(lb)?);

    lb.set_backend("a", Backend::new(b0)).map_err(e)?;
    lb.set_backend("a", Backend::new(b1)).map_err(e)?;
    lb.set_backend("a", Backend::new(b1)).map_err(e)?;
    lb.set_backend(
        "a",
        Backend {
            addr: b0,
            weight: 3,
        },
    )
    .map_err(e)?;
    lb.drain_backend("a", b1).map_err(e)?;
    let a = lb.list().map_err(e)?.remove(0);
    ensure!(a.backends.len() == 2, "backends: {:?}", a.backends);
    ensure!(a.backends[&b0].weight == 3, "weight not updated");
    ensure!(a.backends[&b1].weight == 0, "drain did not set weight 0");

    let before = lb.list().map_err(e)?;
    ensure!(
        matches!(lb.drain_backend("a", b2), Err(LbError::NoBackend { .. })),
        "draining an unknown backend must fail with NoBackend"
    );
    ensure!(
        matches!(
            lb.set_backend("zz", Backend::new(b2)),
            Err(LbError::NoService(_))
        ),
        "a backend for an unknown service must fail with NoService"
    );
    ensure!(
        lb.ensure_service(&spec("b", va)).is_err(),
        "a VIP used twice must be refused"
    );
    ensure!(
        lb.list().map_err(e)? == before,
        "refused calls changed the state"
    );

    lb.remove_backend("a", b0).map_err(e)?;
    lb.remove_backend("a", b0).map_err(e)?;
    let b = ServiceState::new(spec("b", vb)).with_backends([Backend::new(b2)]);
    lb.set_service(&b).map_err(e)?;
    lb.set_service(&b).map_err(e)?;
    ensure!(ids(lb)? == ["a", "b"], "after set_service: {:?}", ids(lb)?);

    lb.reconcile(std::slice::from_ref(&b)).map_err(e)?;
    ensure!(
        lb.list().map_err(e)? == vec![b.clone()],
        "reconcile did not converge"
    );
    lb.delete_service("b").map_err(e)?;
    lb.delete_service("b").map_err(e)?;
    ensure!(ids(lb)?.is_empty(), "delete_service left {:?}", ids(lb)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::{Balancer, Change, Dataplane};
    use parking_lot::Mutex;

    /// Records the changes it is given; refuses IPv6 like the kernel ones.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl Dataplane for Recording {
        fn kind(&self) -> &'static str {
            "recording"
        }
        fn check(&self, s: &ServiceState) -> crate::Result<()> {
            if s.spec.vip.is_some_and(|v| v.is_ipv6()) {
                return Err(LbError::Unsupported {
                    backend: "recording",
                    what: "IPv6".into(),
                });
            }
            Ok(())
        }
        fn apply(&self, c: Change<'_>) -> crate::Result<()> {
            let id = c
                .new
                .or(c.old)
                .map(|s| s.spec.id.clone())
                .unwrap_or_default();
            self.0.lock().push(id);
            Ok(())
        }
        fn replace_all(&self, all: &[&ServiceState]) -> crate::Result<()> {
            self.0.lock().push(format!("replace {}", all.len()));
            Ok(())
        }
    }

    #[test]
    fn the_generic_balancer_conforms_and_skips_no_op_changes() {
        let lb = Balancer::new(Recording::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        check_state_semantics(
            &lb,
            [ip("10.0.0.1"), ip("10.0.0.2")],
            [ip("10.0.1.1"), ip("10.0.1.2"), ip("10.0.1.3")],
        )
        .unwrap();
        let log = lb.dataplane().0.lock().clone();
        // repeated identical calls reach the dataplane once
        assert_eq!(log.first().map(String::as_str), Some("replace 0"));
        let a_changes = log.iter().filter(|x| *x == "a").count();
        // create, b0, b1, weight, drain, remove b0, deleted by reconcile
        assert_eq!(a_changes, 7, "{log:?}");
    }
}
