//! Placing one group of placement-equivalent tasks.
//!
//! One pass over the live nodes runs the filters (counting refusals) and
//! sorts the eligible nodes into the branches of the spread preferences.
//! Tasks are divided among branches by water-filling (every branch is
//! brought to the same number of the service's tasks, existing ones
//! included; branches that cannot take their share give it to the others);
//! inside a branch a heap ordered by the policy's rank gives each task to
//! the best node, and only that node is ranked again. The cost is
//! O(nodes + tasks · log nodes) per group, against SwarmKit's rebuild of
//! its node tree for every group (every task, for tasks without a service).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

use swarm_api::v1::GenericResource;

use super::fxhash::FxHashMap;
use super::state::State;
use crate::filter::{Candidate, Pipeline};
use crate::policy::Policy;
use crate::requirements::{LabelRef, TaskRequirements};

/// Per-node scratch arrays, reused between groups.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    service_tasks: Vec<u32>,
    failures: Vec<u32>,
    touched: Vec<u32>,
}

/// Knobs of the failure underweighting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailureRule {
    pub(crate) window: Duration,
    pub(crate) threshold: u32,
}

/// What one group run decided.
pub(crate) struct GroupOutcome {
    /// (index into the group's task list, node slot, generic resources held).
    pub(crate) placed: Vec<(usize, u32, Vec<GenericResource>)>,
    /// The explanation when some tasks stayed unplaced.
    pub(crate) explanation: Option<String>,
}

type Entry<R> = Reverse<(R, u64, u32)>;

struct Run<'a, P: Policy> {
    policy: &'a P,
    pipeline: &'a Pipeline,
    enabled: &'a [usize],
    req: &'a TaskRequirements,
    service: u32,
    threshold: u32,
    state: &'a mut State,
    service_tasks: &'a mut [u32],
    failures: &'a [u32],
    total: usize,
    placed: Vec<(usize, u32, Vec<GenericResource>)>,
}

impl<P: Policy> Run<'_, P> {
    fn candidate(&self, slot: u32) -> Option<Candidate<'_>> {
        let s = self.state.slot(slot)?;
        let recent_failures = self.failures.get(slot as usize).copied().unwrap_or(0);
        Some(Candidate {
            node: &s.info,
            service_tasks: self.service_tasks.get(slot as usize).copied().unwrap_or(0),
            recent_failures,
            failure_penalty: if recent_failures >= self.threshold {
                recent_failures
            } else {
                0
            },
        })
    }

    /// The heap entry of a node that passes every filter, or `None`.
    fn entry(&self, slot: u32) -> Option<Entry<P::Rank>> {
        let c = self.candidate(slot)?;
        if self
            .pipeline
            .first_refusal(self.enabled, self.req, &c)
            .is_some()
        {
            return None;
        }
        let tiebreak = self.state.slot(slot).map_or(0, |s| s.tiebreak);
        Some(Reverse((self.policy.rank(self.req, &c), tiebreak, slot)))
    }

    fn remaining(&self) -> usize {
        self.total - self.placed.len()
    }

    /// Gives up to `n` tasks to the nodes of one heap.
    fn fill_leaf(&mut self, heap: &mut BinaryHeap<Entry<P::Rank>>, n: usize) -> usize {
        let mut done = 0;
        while done < n && self.remaining() > 0 {
            // The best node takes the task and is ranked again in place:
            // one sift instead of a pop and a push.
            let Some(mut top) = heap.peek_mut() else {
                break;
            };
            let Reverse((_, _, slot)) = *top;
            let held = self.state.attach(slot, self.service, self.req, true, None);
            if let Some(c) = self.service_tasks.get_mut(slot as usize) {
                *c += 1;
            }
            self.placed.push((self.placed.len(), slot, held));
            done += 1;
            match self.entry(slot) {
                Some(e) => *top = e,
                None => {
                    std::collections::binary_heap::PeekMut::pop(top);
                }
            }
        }
        done
    }

    fn fill_tree(&mut self, tree: &mut Tree<P::Rank>, node: usize, n: usize) -> usize {
        if tree.nodes[node].children.is_empty() {
            let Some(h) = tree.nodes[node].heap else {
                return 0;
            };
            let mut heap = std::mem::take(&mut tree.heaps[h]);
            let done = self.fill_leaf(&mut heap, n);
            tree.heaps[h] = heap;
            return done;
        }
        let mut usable: Vec<usize> = tree.nodes[node]
            .children
            .iter()
            .copied()
            .filter(|&c| tree.nodes[c].eligible > 0)
            .collect();
        let mut done = 0;
        while done < n && !usable.is_empty() && self.remaining() > 0 {
            let counts: Vec<u64> = usable.iter().map(|&c| tree.nodes[c].tasks).collect();
            let quotas = water_fill(&counts, (n - done) as u64);
            let mut full = Vec::new();
            for (i, &child) in usable.iter().enumerate() {
                let q = usize::try_from(quotas[i]).unwrap_or(usize::MAX);
                if q == 0 {
                    continue;
                }
                let got = self.fill_tree(tree, child, q);
                tree.nodes[child].tasks += got as u64;
                done += got;
                if got < q {
                    full.push(child);
                }
            }
            if full.is_empty() {
                break;
            }
            usable.retain(|c| !full.contains(c));
        }
        done
    }
}

struct TreeNode {
    value: String,
    children: Vec<usize>,
    /// Active tasks of the service on all live nodes of the branch.
    tasks: u64,
    /// Nodes of the branch that passed the filters.
    eligible: u32,
    heap: Option<usize>,
}

struct Tree<R: Ord> {
    nodes: Vec<TreeNode>,
    heaps: Vec<BinaryHeap<Entry<R>>>,
}

fn label_value<'a>(info: &'a crate::node_info::NodeInfo, l: &LabelRef) -> &'a str {
    match l {
        LabelRef::Node(name) => info.node_label(name).unwrap_or(""),
        LabelRef::Engine(name) => info.engine_label(name).unwrap_or(""),
    }
}

/// Quotas bringing every branch to the same level: the highest level `L`
/// with Σ max(0, L − count) ≤ remaining, then one more task each for the
/// first branches (in order) at that level until none is left.
pub(crate) fn water_fill(counts: &[u64], remaining: u64) -> Vec<u64> {
    let Some(&min) = counts.iter().min() else {
        return Vec::new();
    };
    let need = |level: u64| -> u64 {
        counts
            .iter()
            .map(|&c| level.saturating_sub(c))
            .fold(0u64, u64::saturating_add)
    };
    let (mut lo, mut hi) = (min, min.saturating_add(remaining));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if need(mid) <= remaining {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut quotas: Vec<u64> = counts.iter().map(|&c| lo.saturating_sub(c)).collect();
    let mut left = remaining - need(lo);
    for (i, &c) in counts.iter().enumerate() {
        if left == 0 {
            break;
        }
        if c <= lo {
            quotas[i] += 1;
            left -= 1;
        }
    }
    quotas
}

/// Everything a group run needs besides the scheduler's books.
pub(crate) struct GroupInput<'a> {
    pub(crate) req: &'a TaskRequirements,
    pub(crate) service: u32,
    pub(crate) spec_version: u64,
    pub(crate) tasks: usize,
    pub(crate) now: SystemTime,
    pub(crate) failure_rule: FailureRule,
}

/// Places up to `input.tasks` tasks of one group.
pub(crate) fn place_group<P: Policy>(
    policy: &P,
    pipeline: &Pipeline,
    state: &mut State,
    scratch: &mut Scratch,
    input: &GroupInput<'_>,
) -> GroupOutcome {
    let req = input.req;
    let enabled = pipeline.enabled_for(req);
    let n_slots = state.slots.len();
    scratch.service_tasks.resize(n_slots, 0);
    scratch.failures.resize(n_slots, 0);
    scratch.touched.clear();
    if let Some(m) = state.service_counts.get(input.service as usize) {
        for (&slot, &c) in m {
            scratch.service_tasks[slot as usize] = c;
        }
    }
    let service_id = state.service_id(input.service).to_string();
    state.failures.fill(
        &service_id,
        input.spec_version,
        input.now,
        input.failure_rule.window,
        &mut scratch.failures,
        &mut scratch.touched,
    );

    let mut run = Run {
        policy,
        pipeline,
        enabled: &enabled,
        req,
        service: input.service,
        threshold: input.failure_rule.threshold,
        state,
        service_tasks: &mut scratch.service_tasks,
        failures: &scratch.failures,
        total: input.tasks,
        placed: Vec::new(),
    };

    // One pass over the nodes: filters, and the spread tree.
    let mut tree: Tree<P::Rank> = Tree {
        nodes: vec![TreeNode {
            value: String::new(),
            children: Vec::new(),
            tasks: 0,
            eligible: 0,
            heap: None,
        }],
        heaps: Vec::new(),
    };
    let mut leaf_entries: Vec<Vec<Entry<P::Rank>>> = Vec::new();
    {
        let mut child_of: FxHashMap<(usize, &str), usize> = FxHashMap::default();
        let mut path: Vec<usize> = Vec::with_capacity(req.spread.len() + 1);
        for (slot, s) in run.state.live_nodes() {
            path.clear();
            path.push(0);
            let mut cur = 0;
            for level in &req.spread {
                let value = label_value(&s.info, level);
                cur = match child_of.get(&(cur, value)) {
                    Some(&c) => c,
                    None => {
                        let c = tree.nodes.len();
                        tree.nodes.push(TreeNode {
                            value: value.to_string(),
                            children: Vec::new(),
                            tasks: 0,
                            eligible: 0,
                            heap: None,
                        });
                        tree.nodes[cur].children.push(c);
                        child_of.insert((cur, value), c);
                        c
                    }
                };
                path.push(cur);
            }
            let svc = run.service_tasks[slot as usize];
            let entry = run.entry(slot);
            for &p in &path {
                tree.nodes[p].tasks += u64::from(svc);
                if entry.is_some() {
                    tree.nodes[p].eligible += 1;
                }
            }
            if let Some(e) = entry {
                let leaf = &mut tree.nodes[cur];
                let h = match leaf.heap {
                    Some(h) => h,
                    None => {
                        leaf_entries.push(Vec::new());
                        leaf.heap = Some(leaf_entries.len() - 1);
                        leaf_entries.len() - 1
                    }
                };
                leaf_entries[h].push(e);
            }
        }
    }
    tree.heaps = leaf_entries.into_iter().map(BinaryHeap::from).collect();
    // Branches in label-value order, for determinism.
    for i in 0..tree.nodes.len() {
        let mut children = std::mem::take(&mut tree.nodes[i].children);
        children.sort_by(|&a, &b| tree.nodes[a].value.cmp(&tree.nodes[b].value));
        tree.nodes[i].children = children;
    }

    run.fill_tree(&mut tree, 0, input.tasks);
    let placed = std::mem::take(&mut run.placed);

    let explanation = (placed.len() < input.tasks).then(|| {
        // Explain with the cluster as it is now: each node counted once, by
        // the first filter that refuses it.
        let mut refusals = pipeline.refusals();
        let slots: Vec<u32> = run.state.live_nodes().map(|(s, _)| s).collect();
        for slot in slots {
            if let Some(c) = run.candidate(slot)
                && let Some(f) = pipeline.first_refusal(&enabled, req, &c)
            {
                refusals.add(f);
            }
        }
        pipeline.explain(&refusals)
    });

    // Reset the scratch arrays for the next group.
    if let Some(m) = state.service_counts.get(input.service as usize) {
        for &slot in m.keys() {
            scratch.service_tasks[slot as usize] = 0;
        }
    }
    for (_, slot, _) in &placed {
        scratch.service_tasks[*slot as usize] = 0;
    }
    for &slot in &scratch.touched {
        scratch.failures[slot as usize] = 0;
    }
    GroupOutcome {
        placed,
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::water_fill;

    #[test]
    fn water_fill_levels_branches() {
        assert_eq!(water_fill(&[0, 0, 0], 7), vec![3, 2, 2]);
        assert_eq!(water_fill(&[5, 0, 1], 4), vec![0, 3, 1]);
        assert_eq!(water_fill(&[5, 0, 1], 9), vec![0, 5, 4]);
        assert_eq!(water_fill(&[5, 0, 1], 10), vec![1, 5, 4]);
        assert_eq!(water_fill(&[2, 2], 0), vec![0, 0]);
        assert_eq!(water_fill(&[], 3), Vec::<u64>::new());
        let q = water_fill(&[3, 9, 0, 4], 1000);
        assert_eq!(q.iter().sum::<u64>(), 1000);
    }
}
