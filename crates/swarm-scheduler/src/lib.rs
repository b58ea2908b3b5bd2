//! Task placement for swarm-rs: SwarmKit's scheduler, made incremental,
//! with pluggable filters and policies and a workload simulator.
//!
//! # What it does
//!
//! The scheduler decides which node runs each pending task, exactly as
//! SwarmKit's default scheduler does:
//!
//! * **Filters** ([`filter`]), in SwarmKit's order: node ready and active;
//!   resources (CPU, memory, named and discrete generic resources); plugins
//!   (network, volume, log drivers); [constraints](constraint); platform;
//!   host-mode ports; max replicas per node. A task that fits nowhere stays
//!   pending with SwarmKit's explanation, e.g. `no suitable node
//!   (scheduling constraints not satisfied on 3 nodes; insufficient
//!   resources on 2 nodes)`.
//! * **Spread preferences**: tasks are divided evenly over the values of
//!   one or more labels (nodes without the label form their own branch),
//!   counting the service's existing tasks; a branch that cannot take its
//!   share gives the rest to the others.
//! * **Ranking** inside a branch, by the [`Policy`]: SwarmKit's [`Spread`]
//!   avoids nodes where the service failed 5 times within 5 minutes, then
//!   prefers fewer tasks of the service, then fewer tasks in total.
//!   [`Binpack`] fills the most-used node first.
//!
//! Unlike SwarmKit, it never rebuilds its view of the cluster: node and task
//! events update per-node books in O(1), and a pass costs one scan of the
//! nodes per *group* of equivalent tasks plus a heap operation per task.
//! Tasks with equal requirements form one group even without a service
//! (SwarmKit places those one at a time, scanning every node each time).
//!
//! # Contract with the manager
//!
//! * Feed every store event: [`Scheduler::upsert_node`] /
//!   [`Scheduler::remove_node`], [`Scheduler::upsert_task`] /
//!   [`Scheduler::remove_task`], in store order. Events may come in any
//!   order between nodes and tasks (a task on a node not yet seen is booked
//!   when the node appears).
//! * The scheduler queues tasks that are PENDING with no node and a desired
//!   state of at most COMPLETE; PENDING tasks that already have a node
//!   (global services) are *pre-assigned*: only their node is checked.
//!   Tasks ASSIGNED..RUNNING hold resources on their node (and count as
//!   active while their desired state is at most COMPLETE); later states let
//!   go. A move to FAILED or REJECTED counts as a failure of the service on
//!   the node. A task pending with a desired state past COMPLETE is not
//!   placed: the orchestrator should shut it down (SwarmKit's scheduler
//!   does so for tasks of an old service version).
//! * Call [`Scheduler::schedule`] after a batch of events (SwarmKit
//!   debounces commits by 50 ms, at most 1 s). Commit each [`Assignment`]
//!   ([`Assignment::apply_to`] sets `node_id`,
//!   `assigned_generic_resources` and the ASSIGNED status with SwarmKit's
//!   message), only if the stored task is still PENDING and unassigned.
//!   Write each [`Unplaced::reason`] into the task's `status.err`
//!   ([`Unplaced::apply_to`] tells when nothing changed and no write is
//!   needed).
//! * Decisions are tentative until the ASSIGNED task comes back through
//!   `upsert_task`. If a commit fails, call [`Scheduler::undo`]: the booking
//!   is released and the task is placed again next pass.
//! * Validate constraints when a service is created or updated with
//!   [`constraint::validate_placement`] (or [`constraint::parse`]); the
//!   error names the bad expression.
//! * Time is passed in (`now`), never read: failures are dated by the
//!   `now` given to `upsert_task` and aged by the `now` given to `schedule`.
//!
//! # Where it differs from SwarmKit, on purpose
//!
//! * Ties between equally ranked nodes go by a hash of the node id, and
//!   spread branches are visited in label-value order (SwarmKit: Go map
//!   order, i.e. random), so the same events always give the same
//!   decisions, whatever order the nodes were added in.
//! * Inside a branch each task goes to the best node at that moment
//!   (SwarmKit's round-robin over the sorted nodes approximates this).
//!   Branch shares are computed by water-filling with up-to-date counts
//!   (SwarmKit re-divides with counts that ignore tasks placed earlier in
//!   the same pass).
//! * An explanation counts each node once, for the first filter that
//!   refuses it when the group gives up (SwarmKit's counters also reset
//!   whenever a node passes).
//! * A task on a node the scheduler has not seen yet is booked when the
//!   node appears (SwarmKit forgets it). Queued tasks are placed in arrival
//!   order.
//! * Not covered: CSI cluster volumes (the object model has none) and
//!   volume-driver plugins (mounts carry no volume driver).
//!
//! # Performance
//!
//! `cargo bench -p swarm-scheduler --bench shapes` runs SwarmKit's benchmark
//! shapes and prints wall time, tasks/s and the speedup over SwarmKit's own
//! figures: 100k tasks on 100k nodes take about a second on 2 busy cores, where
//! SwarmKit did not finish in 15 minutes.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use swarm_api::v1::*;
//! use swarm_scheduler::{ClusterScheduler, Scheduler};
//!
//! fn node(id: &str, zone: &str) -> Node {
//!     Node {
//!         id: id.into(),
//!         spec: Some(NodeSpec {
//!             annotations: Some(Annotations {
//!                 name: id.into(),
//!                 labels: [("zone".to_string(), zone.to_string())].into(),
//!             }),
//!             ..Default::default()
//!         }),
//!         status: Some(NodeStatus { state: NodeState::Ready as i32, ..Default::default() }),
//!         description: Some(NodeDescription {
//!             resources: Some(Resources { nano_cpus: 2_000_000_000, memory_bytes: 8 << 30, generic: vec![] }),
//!             ..Default::default()
//!         }),
//!         ..Default::default()
//!     }
//! }
//!
//! fn task(id: &str) -> Task {
//!     Task {
//!         id: id.into(),
//!         service_id: "web".into(),
//!         spec_version: 1,
//!         desired_state: TaskState::Running as i32,
//!         status: Some(TaskStatus { state: TaskState::Pending as i32, ..Default::default() }),
//!         spec: Some(TaskSpec {
//!             resources: Some(ResourceRequirements {
//!                 reservations: Some(Resources { nano_cpus: 1_000_000_000, memory_bytes: 0, generic: vec![] }),
//!                 limits: None,
//!             }),
//!             placement: Some(Placement {
//!                 constraints: vec!["node.labels.zone!=c".into()],
//!                 preferences: vec![PlacementPreference {
//!                     preference: Some(placement_preference::Preference::Spread(SpreadOver {
//!                         spread_descriptor: "node.labels.zone".into(),
//!                     })),
//!                 }],
//!                 ..Default::default()
//!             }),
//!             ..Default::default()
//!         }),
//!         ..Default::default()
//!     }
//! }
//!
//! let now = SystemTime::UNIX_EPOCH;
//! let mut s = ClusterScheduler::new();
//! for (id, zone) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c")] {
//!     s.upsert_node(&node(id, zone));
//! }
//! for i in 0..10 {
//!     s.upsert_task(&task(&format!("t{i}")), now);
//! }
//! let pass = s.schedule(now);
//! // Zone c is excluded by the constraint. Zones a and b should get 5 tasks
//! // each, but b1 has room for 2 (2 CPUs): zone a takes the rest of the
//! // share, up to its room (2 nodes, 4 tasks)...
//! assert_eq!(pass.assignments.len(), 6);
//! let in_b = pass.assignments.iter().filter(|a| a.node_id == "b1").count();
//! assert_eq!(in_b, 2);
//! // ...and the rest stay pending with SwarmKit's explanation.
//! assert_eq!(pass.unplaced.len(), 4);
//! assert_eq!(
//!     pass.unplaced[0].reason,
//!     "no suitable node (insufficient resources on 3 nodes; \
//!      scheduling constraints not satisfied on 1 node)"
//! );
//! ```

#![forbid(unsafe_code)]

pub mod conformance;
pub mod constraint;
pub mod filter;
mod node_info;
pub mod policy;
pub mod requirements;
mod resources;
mod scheduler;
pub mod sim;

pub use filter::{Candidate, Filter, Pipeline};
pub use node_info::{NodeInfo, NodePlatform, NodePlugin};
pub use policy::{Binpack, Policy, Spread};
pub use requirements::TaskRequirements;
pub use resources::{GenericPool, NodeResources};
pub use scheduler::{
    Assignment, ClusterScheduler, DEFAULT_FAILURE_WINDOW, DEFAULT_MAX_FAILURES, Pass, Scheduler,
    SchedulerBuilder, Unplaced,
};
