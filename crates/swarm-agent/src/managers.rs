//! The managers an agent may connect to: the addresses it was given, the
//! weighted list each session message brings, and the leader a follower
//! redirects to. Pure: randomness is passed in.

use std::path::Path;

use rand::Rng;
use swarm_api::v1::WeightedPeer;

/// File in the state directory where the agent remembers the managers it
/// last heard of (one `host:port` per line), so that a restarted agent
/// finds the cluster even when the manager it joined through is gone.
pub const MANAGERS_FILE: &str = "managers";

/// The managers remembered at `path` (none when the file is missing or
/// unreadable: the configured addresses still apply).
pub fn load_remembered(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Remembers `addrs` at `path` (written to a temporary file, then renamed).
pub fn remember(path: &Path, addrs: &[String]) -> std::io::Result<()> {
    let mut text = addrs.join("\n");
    text.push('\n');
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Known manager addresses with weights.
#[derive(Debug, Clone, Default)]
pub struct Managers {
    peers: Vec<(String, i64)>,
    redirect: Option<String>,
}

impl Managers {
    /// The addresses the agent was configured with (weight 1 each).
    pub fn new(seeds: impl IntoIterator<Item = String>) -> Self {
        let mut m = Managers::default();
        for s in seeds {
            if !s.is_empty() && !m.peers.iter().any(|(a, _)| *a == s) {
                m.peers.push((s, 1));
            }
        }
        m
    }

    /// Replaces the list with what a session message says (an empty list
    /// keeps the current one). True when the set of addresses changed.
    pub fn update(&mut self, peers: &[WeightedPeer]) -> bool {
        let next: Vec<(String, i64)> = peers
            .iter()
            .filter(|p| !p.addr.is_empty())
            .map(|p| (p.addr.clone(), p.weight.max(1)))
            .collect();
        if next.is_empty() {
            return false;
        }
        let mut before = self.addrs();
        self.peers = next;
        let mut after = self.addrs();
        before.sort_unstable();
        after.sort_unstable();
        before != after
    }

    /// A follower said the leader is at `addr`: go there next.
    pub fn redirect(&mut self, addr: String) {
        if !self.peers.iter().any(|(a, _)| *a == addr) {
            self.peers.push((addr.clone(), 1));
        }
        self.redirect = Some(addr);
    }

    /// Every known address.
    pub fn addrs(&self) -> Vec<String> {
        self.peers.iter().map(|(a, _)| a.clone()).collect()
    }

    /// The manager to try next: a pending redirect, else a weighted draw
    /// avoiding `last_failed` when there is a choice.
    pub fn pick<R: Rng + ?Sized>(
        &mut self,
        last_failed: Option<&str>,
        rng: &mut R,
    ) -> Option<String> {
        if let Some(r) = self.redirect.take() {
            return Some(r);
        }
        let candidates: Vec<&(String, i64)> = self
            .peers
            .iter()
            .filter(|(a, _)| Some(a.as_str()) != last_failed)
            .collect();
        let candidates = if candidates.is_empty() {
            self.peers.iter().collect()
        } else {
            candidates
        };
        let total: i64 = candidates.iter().map(|(_, w)| *w).sum();
        if total <= 0 {
            return None;
        }
        let mut x = rng.random_range(0..total);
        for (a, w) in candidates {
            if x < *w {
                return Some(a.clone());
            }
            x -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn peer(addr: &str, weight: i64) -> WeightedPeer {
        WeightedPeer {
            node_id: String::new(),
            addr: addr.into(),
            weight,
        }
    }

    #[test]
    fn weighted_redirected_and_avoiding_the_last_failure() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut m = Managers::new(["a:1".to_string(), "a:1".to_string()]);
        assert_eq!(m.addrs(), ["a:1"]);
        assert_eq!(
            m.pick(Some("a:1"), &mut rng).as_deref(),
            Some("a:1"),
            "only choice"
        );
        assert!(m.update(&[peer("a:1", 1), peer("b:1", 9)]), "b:1 is new");
        assert!(!m.update(&[peer("b:1", 2), peer("a:1", 1)]), "same set");
        m.update(&[peer("a:1", 1), peer("b:1", 9)]);
        let b = (0..1000)
            .filter(|_| m.pick(None, &mut rng).as_deref() == Some("b:1"))
            .count();
        assert!((850..=950).contains(&b), "{b}");
        assert!((0..100).all(|_| m.pick(Some("b:1"), &mut rng).as_deref() == Some("a:1")));
        m.redirect("c:1".into());
        assert_eq!(m.pick(Some("c:1"), &mut rng).as_deref(), Some("c:1"));
        assert!(m.addrs().contains(&"c:1".to_string()));
        assert!(!m.update(&[]));
        assert_eq!(m.addrs().len(), 3, "an empty list keeps what is known");
    }

    #[test]
    fn the_list_is_remembered_across_restarts() {
        let dir = std::env::temp_dir().join(format!("managers-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(MANAGERS_FILE);
        assert!(load_remembered(&path).is_empty(), "missing file: none");
        remember(&path, &["a:1".to_string(), "b:2".to_string()]).unwrap();
        assert_eq!(load_remembered(&path), ["a:1", "b:2"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
