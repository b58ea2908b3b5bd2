//! The ordered list of filters and the explanation of refusals.

use super::builtin::{
    ConstraintFilter, HostPortFilter, MaxReplicasFilter, PlatformFilter, PluginFilter, ReadyFilter,
    ResourceFilter,
};
use super::{Candidate, Filter};
use crate::requirements::TaskRequirements;

/// Filters run in order; the first refusal decides.
pub struct Pipeline {
    filters: Vec<Box<dyn Filter>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.filters.iter().map(|x| x.name()))
            .finish()
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::swarmkit()
    }
}

impl Pipeline {
    /// SwarmKit's filters in SwarmKit's order: ready, resources, plugins,
    /// constraints, platform, host ports, max replicas.
    pub fn swarmkit() -> Self {
        Pipeline {
            filters: vec![
                Box::new(ReadyFilter),
                Box::new(ResourceFilter),
                Box::new(PluginFilter),
                Box::new(ConstraintFilter),
                Box::new(PlatformFilter),
                Box::new(HostPortFilter),
                Box::new(MaxReplicasFilter),
            ],
        }
    }

    /// No filter at all: every node takes every task.
    pub fn empty() -> Self {
        Pipeline {
            filters: Vec::new(),
        }
    }

    /// Appends a filter; it runs after those already there.
    pub fn push(&mut self, filter: Box<dyn Filter>) {
        self.filters.push(filter);
    }

    /// The filters, in order.
    pub fn filters(&self) -> &[Box<dyn Filter>] {
        &self.filters
    }

    /// Indices of the filters enabled for these requirements.
    pub(crate) fn enabled_for(&self, task: &TaskRequirements) -> Vec<usize> {
        (0..self.filters.len())
            .filter(|&i| self.filters[i].enabled(task))
            .collect()
    }

    /// The first enabled filter refusing the node, if any.
    #[inline]
    pub(crate) fn first_refusal(
        &self,
        enabled: &[usize],
        task: &TaskRequirements,
        candidate: &Candidate<'_>,
    ) -> Option<usize> {
        enabled
            .iter()
            .copied()
            .find(|&i| !self.filters[i].check(task, candidate))
    }

    /// A fresh tally of refusals for this pipeline.
    pub fn refusals(&self) -> Refusals {
        Refusals {
            counts: vec![0; self.filters.len()],
        }
    }

    /// SwarmKit's explanation: each filter that refused nodes, most refusals
    /// first (ties in pipeline order), joined by `"; "`.
    pub fn explain(&self, refusals: &Refusals) -> String {
        let mut order: Vec<usize> = (0..self.filters.len())
            .filter(|&i| refusals.counts.get(i).copied().unwrap_or(0) > 0)
            .collect();
        order.sort_by_key(|&i| std::cmp::Reverse(refusals.counts[i]));
        order
            .iter()
            .map(|&i| self.filters[i].explain(refusals.counts[i]))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// How many nodes each filter refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusals {
    counts: Vec<usize>,
}

impl Refusals {
    /// Counts a refusal by filter `index`.
    pub fn add(&mut self, index: usize) {
        if let Some(c) = self.counts.get_mut(index) {
            *c += 1;
        }
    }

    /// Refusals by filter, in pipeline order.
    pub fn counts(&self) -> &[usize] {
        &self.counts
    }

    /// Total nodes refused.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// The text SwarmKit writes into a task it could not place: `no suitable
/// node (<explanation>)`, or `no suitable node` without one.
pub fn no_suitable_node(explanation: &str) -> String {
    if explanation.is_empty() {
        "no suitable node".to_string()
    } else {
        format!("no suitable node ({explanation})")
    }
}
