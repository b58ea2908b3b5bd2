//! The store's [`Proposer`]: a transaction is written to the raft log and
//! the call returns once it is committed and applied on this member.
//! Transactions that wait at the same time share a log entry (see the
//! `batching` module).

use std::sync::Arc;

use openraft::error::{CheckIsLeaderError, RaftError};
use prost::Message;
use swarm_api::v1::StoreActionBatch;
use swarm_store::{BoxFuture, LeaderHint, ProposeError, Proposer};

use crate::batching;
use crate::node::{Inner, RaftNode};
use crate::types::{Member, NodeId};

/// Proposes store transactions through a [`RaftNode`]. Install it with
/// `store.set_proposer(Some(Box::new(node.proposer())))`.
#[derive(Clone)]
pub struct RaftProposer {
    inner: Arc<Inner>,
}

impl RaftNode {
    /// The store proposer of this member.
    pub fn proposer(&self) -> RaftProposer {
        RaftProposer {
            inner: self.inner.clone(),
        }
    }

    /// Waits until this member has applied everything committed before the
    /// call (raft's read index, confirmed by a quorum): a read of the store
    /// after it is linearizable. Leader only.
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
        let raft = self
            .inner
            .raft()
            .map_err(|e| ProposeError::Failed(e.to_string()))?;
        let timeout = self.inner.config.proposal_timeout;
        match tokio::time::timeout(timeout, raft.ensure_linearizable()).await {
            Err(_) => Err(ProposeError::Failed(format!(
                "no quorum confirmed leadership within {timeout:?}"
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => Err(
                ProposeError::NotLeader(hint(f.leader_id, f.leader_node.as_ref())),
            ),
            Ok(Err(e)) => Err(ProposeError::Failed(e.to_string())),
        }
    }
}

pub(crate) fn hint(id: Option<NodeId>, node: Option<&Member>) -> Option<LeaderHint> {
    Some(LeaderHint {
        id: id?,
        addr: node.map(|n| n.addr.clone()).unwrap_or_default(),
    })
}

impl Proposer for RaftProposer {
    fn propose(&self, batch: StoreActionBatch) -> BoxFuture<Result<u64, ProposeError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let size = batch.encoded_len();
            let limit = inner.config.max_proposal_bytes;
            if size > limit {
                return Err(ProposeError::TooLarge { size, limit });
            }
            batching::propose(&inner, batch, size).await
        })
    }
}
