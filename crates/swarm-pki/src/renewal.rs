//! When a node renews its certificate: at a random point between 50% and
//! 80% of its life (SwarmKit's rule), so that a cluster whose nodes joined
//! together does not renew all at once. Pure: time and randomness are
//! passed in.

use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::identity::NodeIdentity;

/// Fraction of a certificate's life at which renewal starts and ends.
pub const RENEWAL_WINDOW: (f64, f64) = swarm_api::defaults::CERT_RENEWAL_WINDOW;

/// What a node should do about its certificate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Renew after this long.
    Wait(Duration),
    /// Renew now: the chosen point is past (or the certificate's validity
    /// period is empty).
    Now,
    /// The certificate has expired: it can no longer authenticate a
    /// renewal, the node must join again with a token.
    Expired,
}

/// The moment to renew a certificate valid from `not_before` to
/// `not_after`: uniformly drawn in [50%, 80%) of its life.
pub fn renewal_time<R: Rng + ?Sized>(
    not_before: SystemTime,
    not_after: SystemTime,
    rng: &mut R,
) -> SystemTime {
    let life = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    let fraction = rng.random_range(RENEWAL_WINDOW.0..RENEWAL_WINDOW.1);
    not_before + life.mul_f64(fraction)
}

/// What to do at `now` with the certificate `identity` describes, the
/// renewal point drawn from `rng`.
pub fn plan_renewal<R: Rng + ?Sized>(
    identity: &NodeIdentity,
    now: SystemTime,
    rng: &mut R,
) -> Renewal {
    if now > identity.not_after {
        return Renewal::Expired;
    }
    if identity.not_after <= identity.not_before {
        return Renewal::Now;
    }
    let at = renewal_time(identity.not_before, identity.not_after, rng);
    match at.duration_since(now) {
        Ok(wait) if !wait.is_zero() => Renewal::Wait(wait),
        _ => Renewal::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use swarm_api::v1::NodeRole;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn identity(not_before: SystemTime, life: Duration) -> NodeIdentity {
        NodeIdentity {
            node_id: "0123456789abcdefghijklmno".into(),
            role: NodeRole::Worker,
            cluster_id: "c".into(),
            not_before,
            not_after: not_before + life,
            serial: "01".into(),
        }
    }

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn renewal_points_fall_in_50_to_80_percent_and_spread() {
        let mut rng = StdRng::seed_from_u64(42);
        let life = 90 * DAY;
        let mut points = Vec::new();
        for _ in 0..2000 {
            let at = renewal_time(t0(), t0() + life, &mut rng);
            let frac = at.duration_since(t0()).unwrap().as_secs_f64() / life.as_secs_f64();
            assert!((0.5..0.8).contains(&frac), "{frac}");
            points.push(frac);
        }
        // Spread over the window, not bunched: each tenth of it is hit.
        for decile in 0..10 {
            let lo = 0.5 + 0.03 * f64::from(decile);
            assert!(points.iter().any(|p| (lo..lo + 0.03).contains(p)), "{lo}");
        }
    }

    #[test]
    fn plan_follows_the_clock() {
        let id = identity(t0(), 90 * DAY);
        let mut rng = StdRng::seed_from_u64(7);
        // At issuance: wait between 45 and 72 days.
        match plan_renewal(&id, t0(), &mut rng) {
            Renewal::Wait(w) => assert!(w >= 45 * DAY && w < 72 * DAY, "{w:?}"),
            other => panic!("{other:?}"),
        }
        // Past 80%: now, whatever the draw.
        for _ in 0..100 {
            assert_eq!(plan_renewal(&id, t0() + 73 * DAY, &mut rng), Renewal::Now);
        }
        // On the last second it is still renewable; after it, expired.
        assert_eq!(plan_renewal(&id, id.not_after, &mut rng), Renewal::Now);
        assert_eq!(
            plan_renewal(&id, id.not_after + Duration::from_secs(1), &mut rng),
            Renewal::Expired
        );
    }

    #[test]
    fn edge_cases() {
        let mut rng = StdRng::seed_from_u64(1);
        // A clock behind the certificate's start waits longer, not less.
        let id = identity(t0(), 90 * DAY);
        match plan_renewal(&id, t0() - DAY, &mut rng) {
            Renewal::Wait(w) => assert!(w > 45 * DAY),
            other => panic!("{other:?}"),
        }
        // An empty validity period: renew at once.
        let empty = identity(t0(), Duration::ZERO);
        assert_eq!(plan_renewal(&empty, t0(), &mut rng), Renewal::Now);
        // The shortest allowed certificate (1 hour) renews within 30-48 min.
        let short = identity(t0(), Duration::from_secs(3600));
        match plan_renewal(&short, t0(), &mut rng) {
            Renewal::Wait(w) => {
                assert!(w >= Duration::from_secs(1800) && w < Duration::from_secs(2880))
            }
            other => panic!("{other:?}"),
        }
        // Seeded draws are reproducible.
        let a = renewal_time(t0(), t0() + DAY, &mut StdRng::seed_from_u64(9));
        let b = renewal_time(t0(), t0() + DAY, &mut StdRng::seed_from_u64(9));
        assert_eq!(a, b);
    }
}
