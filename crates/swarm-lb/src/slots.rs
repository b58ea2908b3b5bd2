//! Weighted round-robin as a fixed table of slots: the kernel picks slot
//! `numgen inc mod N` and each slot names a backend. Pure functions.

use std::net::IpAddr;

use crate::model::Backend;

/// Spreads `slots` slots over the backends with weight > 0, in proportion to
/// their weights (largest remainder; each active backend gets at least one
/// slot when there are enough), interleaved with smooth weighted round-robin
/// so that consecutive slots cycle through the backends instead of sending
/// runs of connections to one of them. Empty when no backend is active.
///
/// Deterministic: the same backends always give the same table, so a change
/// to one backend rewrites few slots.
pub fn assign(backends: &[Backend], slots: u32) -> Vec<IpAddr> {
    let mut active: Vec<(IpAddr, u64)> = backends
        .iter()
        .filter(|b| b.weight > 0)
        .map(|b| (b.addr, u64::from(b.weight)))
        .collect();
    active.sort();
    if active.is_empty() || slots == 0 {
        return Vec::new();
    }
    let n = slots as usize;
    let counts = apportion(&active, n);
    // Smooth weighted round-robin over the counts.
    let total: i64 = counts.iter().map(|&c| c as i64).sum();
    let mut current = vec![0i64; counts.len()];
    let mut out = Vec::with_capacity(n);
    for _ in 0..total {
        let mut best = usize::MAX;
        for (i, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            current[i] += c as i64;
            if best == usize::MAX || current[i] > current[best] {
                best = i;
            }
        }
        if best == usize::MAX {
            break;
        }
        current[best] -= total;
        out.push(active[best].0);
    }
    out
}

/// Slot counts proportional to weights, summing to `n`.
fn apportion(active: &[(IpAddr, u64)], n: usize) -> Vec<usize> {
    let total: u64 = active.iter().map(|a| a.1).sum();
    let mut counts: Vec<usize> = Vec::with_capacity(active.len());
    let mut rema: Vec<(u64, usize)> = Vec::with_capacity(active.len());
    for (i, &(_, w)) in active.iter().enumerate() {
        let exact = u128::from(w) * n as u128;
        counts.push((exact / u128::from(total)) as usize);
        rema.push(((exact % u128::from(total)) as u64, i));
    }
    // Largest remainders first; ties to the lower index.
    rema.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = n - counts.iter().sum::<usize>();
    for &(_, i) in &rema {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    // Every active backend gets a slot when there are enough slots: take
    // one from the largest holder.
    if active.len() <= n {
        for i in 0..counts.len() {
            if counts[i] == 0
                && let Some(j) = (0..counts.len()).max_by_key(|&j| counts[j])
            {
                counts[j] -= 1;
                counts[i] += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn b(last: u8, weight: u32) -> Backend {
        Backend {
            addr: IpAddr::from([10, 0, 0, last]),
            weight,
        }
    }

    fn count(table: &[IpAddr]) -> BTreeMap<u8, usize> {
        let mut m = BTreeMap::new();
        for a in table {
            if let IpAddr::V4(v4) = a {
                *m.entry(v4.octets()[3]).or_insert(0) += 1;
            }
        }
        m
    }

    #[test]
    fn table_of_weights() {
        // (backends, slots, expected count per backend)
        type Case<'a> = (&'a [Backend], u32, &'a [(u8, usize)]);
        let cases: &[Case<'_>] = &[
            (&[b(1, 1), b(2, 1)], 64, &[(1, 32), (2, 32)]),
            (
                &[b(1, 1), b(2, 1), b(3, 1)],
                64,
                &[(1, 22), (2, 21), (3, 21)],
            ),
            (&[b(1, 3), b(2, 1)], 64, &[(1, 48), (2, 16)]),
            (&[b(1, 1), b(2, 0)], 64, &[(1, 64)]),
            (&[b(1, 1000), b(2, 1)], 8, &[(1, 7), (2, 1)]),
        ];
        for (backends, slots, want) in cases {
            let t = assign(backends, *slots);
            assert_eq!(t.len(), *slots as usize);
            let got: Vec<(u8, usize)> = count(&t).into_iter().collect();
            assert_eq!(&got[..], *want, "backends {backends:?}");
        }
    }

    #[test]
    fn sixteen_backends_get_four_slots_each_interleaved() {
        let bs: Vec<Backend> = (1..=16).map(|i| b(i, 1)).collect();
        let t = assign(&bs, 64);
        assert!(count(&t).values().all(|&c| c == 4));
        // consecutive slots never repeat a backend
        assert!(t.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn no_active_backend_gives_empty_table() {
        assert!(assign(&[], 64).is_empty());
        assert!(assign(&[b(1, 0)], 64).is_empty());
    }

    #[test]
    fn order_of_input_does_not_matter() {
        assert_eq!(
            assign(&[b(1, 2), b(2, 1), b(3, 1)], 64),
            assign(&[b(3, 1), b(1, 2), b(2, 1)], 64)
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn slot_tables_are_proportional(weights in proptest::collection::vec(0u32..20, 0..40), slots in 1u32..256) {
            let bs: Vec<Backend> = weights
                .iter()
                .enumerate()
                .map(|(i, &w)| Backend { addr: IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]), weight: w })
                .collect();
            let t = assign(&bs, slots);
            let active: Vec<&Backend> = bs.iter().filter(|b| b.weight > 0).collect();
            if active.is_empty() {
                prop_assert!(t.is_empty());
                return Ok(());
            }
            prop_assert_eq!(t.len(), slots as usize);
            let total: u64 = active.iter().map(|b| u64::from(b.weight)).sum();
            for b in &active {
                let got = t.iter().filter(|a| **a == b.addr).count() as f64;
                let exact = f64::from(b.weight) * f64::from(slots) / total as f64;
                if active.len() <= slots as usize {
                    prop_assert!(got >= 1.0, "an active backend got no slot");
                    // within the rounding and the one-slot minimums
                    prop_assert!((got - exact).abs() <= active.len() as f64 + 1.0);
                }
            }
            prop_assert!(t.iter().all(|a| active.iter().any(|b| b.addr == *a)), "a drained backend got a slot");
        }
    }
}
