//! The seam between the store and a replicated log.

use std::future::Future;
use std::pin::Pin;

use swarm_api::v1::StoreActionBatch;

use crate::error::ProposeError;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Hands transactions to a replicated log.
///
/// With a proposer installed ([`Store::set_proposer`](crate::Store::set_proposer)),
/// a transaction does not change the store when its closure returns: its
/// changes are encoded as a [`StoreActionBatch`] and proposed. The log, once
/// the batch is committed, calls [`Store::apply`](crate::Store::apply) with
/// it on every member, in log order; `propose` resolves after that call has
/// happened on this member, with the log index the batch got (the version
/// of the objects it wrote), or with
/// [`ProposeError::Rejected`] carrying the error `apply` returned.
pub trait Proposer: Send + Sync + 'static {
    /// Proposes a batch; resolves once it is committed and applied here.
    fn propose(&self, batch: StoreActionBatch) -> BoxFuture<Result<u64, ProposeError>>;
}
