//! One dispatcher session: open it, heartbeat at the period the manager
//! asks for, apply assignments, send task statuses in batches. Ends with
//! an error on any failure; the agent ([`crate::agent`]) reconnects.

use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use swarm_api::v1::dispatcher_client::DispatcherClient;
use swarm_api::v1::{
    AssignmentsRequest, NodeDescription, SessionMessage, SessionRequest, TaskStatusUpdate,
    UpdateTaskStatusRequest,
};
use swarm_pki::{NodeChannelBuilder, NodeTls};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::error::SessionError;
use crate::heartbeat::Heartbeats;
use crate::managers::Managers;
use crate::worker::{StatusReceiver, Worker};

/// Metadata key of a follower's refusal naming the leader.
pub const LEADER_ADDR_KEY: &str = "swarm-leader-addr";

/// Most status updates sent in one call.
const MAX_BATCH: usize = 1000;

/// Heartbeat period used until the manager names one.
const DEFAULT_PERIOD: Duration = swarm_api::defaults::HEARTBEAT_PERIOD;

/// What a session works with.
pub(crate) struct SessionContext<'a> {
    pub(crate) tls: &'a NodeTls,
    pub(crate) description: NodeDescription,
    pub(crate) worker: &'a Worker,
    pub(crate) reports: &'a mut StatusReceiver,
    /// Reports not yet acknowledged by a manager (kept across sessions).
    pub(crate) pending: &'a mut Vec<TaskStatusUpdate>,
    pub(crate) managers: &'a Mutex<Managers>,
    /// Where the manager list is remembered across restarts.
    pub(crate) managers_file: &'a std::path::Path,
    pub(crate) stop: &'a mut watch::Receiver<bool>,
    pub(crate) connected: &'a watch::Sender<bool>,
    /// The channel of the open session (to the leader), shared with the
    /// log publisher ([`crate::logs`]); `None` between sessions.
    pub(crate) channel: &'a watch::Sender<Option<Channel>>,
    /// Woken when the managers' view of this node's role differs from
    /// its certificate's: the renewal loop renews at once (a promotion or
    /// demotion takes effect through the new certificate).
    pub(crate) renew_now: &'a tokio::sync::Notify,
}

/// Records a follower's redirect to the leader, if `status` carries one.
pub(crate) fn note_redirect(status: &tonic::Status, managers: &Mutex<Managers>) -> bool {
    if status.code() != tonic::Code::FailedPrecondition {
        return false;
    }
    match status
        .metadata()
        .get(LEADER_ADDR_KEY)
        .and_then(|v| v.to_str().ok())
    {
        Some(addr) if !addr.is_empty() => {
            tracing::info!(leader = addr, "redirected to the leader");
            managers.lock().redirect(addr.to_string());
            true
        }
        _ => false,
    }
}

fn apply_session_message(msg: &SessionMessage, ctx: &SessionContext<'_>) {
    if let Some(node) = &msg.node {
        let held = ctx.tls.credentials.current().identity().role;
        if node.role() != held {
            tracing::info!(
                certificate = ?held,
                managers_say = ?node.role(),
                "the node's role changed: renewing the certificate now"
            );
            ctx.renew_now.notify_one();
        }
    }
    let changed = {
        let mut m = ctx.managers.lock();
        m.update(&msg.managers).then(|| m.addrs())
    };
    if let Some(addrs) = changed
        && let Err(e) = crate::managers::remember(ctx.managers_file, &addrs)
    {
        tracing::warn!(file = %ctx.managers_file.display(), error = %e, "cannot remember the managers");
    }
    if !msg.root_ca.is_empty() {
        match swarm_pki::parse_bundle_pem(&msg.root_ca) {
            Ok(roots) if !roots.is_empty() && roots != ctx.tls.trust.roots() => {
                if let Err(e) = ctx.tls.trust.set_roots(roots) {
                    tracing::warn!(error = %e, "refusing the root CA bundle from the manager");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "unreadable root CA bundle from the manager"),
        }
    }
}

/// Above this many unsent reports (a long disconnection), only the latest
/// per task is kept: the manager accepts jumps forward.
const COMPACT_ABOVE: usize = 10_000;

/// Keeps the last report of each task, in the order of those reports.
pub(crate) fn compact(pending: &mut Vec<TaskStatusUpdate>) {
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<TaskStatusUpdate> = pending
        .drain(..)
        .rev()
        .filter(|u| seen.insert(u.task_id.clone()))
        .collect();
    kept.reverse();
    *pending = kept;
}

async fn flush(
    client: &mut DispatcherClient<Channel>,
    session_id: &str,
    pending: &mut Vec<TaskStatusUpdate>,
) -> Result<(), SessionError> {
    if pending.len() > COMPACT_ABOVE {
        compact(pending);
    }
    while !pending.is_empty() {
        let n = pending.len().min(MAX_BATCH);
        let updates: Vec<TaskStatusUpdate> = pending[..n].to_vec();
        client
            .update_task_status(UpdateTaskStatusRequest {
                session_id: session_id.to_string(),
                updates,
            })
            .await?;
        pending.drain(..n);
    }
    Ok(())
}

/// Runs one session with the manager at `addr` until it fails or the
/// agent stops (`Ok`).
pub(crate) async fn run_session(
    addr: &str,
    mut ctx: SessionContext<'_>,
) -> Result<(), SessionError> {
    let channel = NodeChannelBuilder::new(ctx.tls.client_tls()?)
        .connect(addr)
        .await?;
    let mut client = DispatcherClient::new(channel.clone());
    let mut session = client
        .session(SessionRequest {
            description: Some(ctx.description.clone()),
            session_id: String::new(),
        })
        .await?
        .into_inner();
    let first = session
        .message()
        .await?
        .ok_or(SessionError::Closed("session"))?;
    let session_id = first.session_id.clone();
    apply_session_message(&first, &ctx);
    let mut assignments = client
        .assignments(AssignmentsRequest {
            session_id: session_id.clone(),
        })
        .await?
        .into_inner();
    tracing::info!(manager = addr, session = %session_id, "session open");
    ctx.connected.send_replace(true);
    ctx.channel.send_replace(Some(channel));
    let result = session_loop(
        &mut ctx,
        &mut client,
        &mut session,
        &mut assignments,
        &session_id,
    )
    .await;
    ctx.connected.send_replace(false);
    ctx.channel.send_replace(None);
    result
}

async fn session_loop(
    ctx: &mut SessionContext<'_>,
    client: &mut DispatcherClient<Channel>,
    session: &mut tonic::Streaming<SessionMessage>,
    assignments: &mut tonic::Streaming<swarm_api::v1::AssignmentsMessage>,
    session_id: &str,
) -> Result<(), SessionError> {
    // Reports a previous session could not deliver go first.
    flush(client, session_id, ctx.pending).await?;
    let mut heartbeats = Heartbeats::new(client.clone(), session_id.to_string());
    let mut next_beat = tokio::time::Instant::now();
    let mut period = DEFAULT_PERIOD;
    loop {
        tokio::select! {
            _ = ctx.stop.changed() => return Ok(()),
            () = tokio::time::sleep_until(next_beat) => {
                period = tokio::time::timeout(period, heartbeats.beat())
                    .await
                    .map_err(|_| tonic::Status::deadline_exceeded("heartbeat timed out"))??;
                // Beat a little early, at a random point, never late.
                let wait = period.mul_f64(rand::rng().random_range(0.7..0.9));
                next_beat = tokio::time::Instant::now() + wait;
            }
            // A new period, or a refusal that ended the heartbeat stream,
            // between beats.
            answer = heartbeats.answer() => period = answer?,
            msg = session.message() => match msg? {
                Some(m) => apply_session_message(&m, ctx),
                None => return Err(SessionError::Closed("session")),
            },
            msg = assignments.message() => match msg? {
                Some(m) => ctx.worker.apply(&m),
                None => return Err(SessionError::Closed("assignments")),
            },
            update = ctx.reports.recv() => {
                let Some(update) = update else { return Ok(()) };
                ctx.pending.push(update);
                while let Ok(u) = ctx.reports.try_recv() {
                    ctx.pending.push(u);
                }
                flush(client, session_id, ctx.pending).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_api::v1::{TaskState, TaskStatus};

    fn update(id: &str, state: TaskState) -> TaskStatusUpdate {
        TaskStatusUpdate {
            task_id: id.into(),
            status: Some(TaskStatus {
                state: state.into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn compaction_keeps_the_latest_per_task() {
        let mut p = vec![
            update("a", TaskState::Accepted),
            update("b", TaskState::Accepted),
            update("a", TaskState::Running),
        ];
        compact(&mut p);
        let got: Vec<(String, TaskState)> = p
            .iter()
            .map(|u| (u.task_id.clone(), u.status.as_ref().unwrap().state()))
            .collect();
        assert_eq!(
            got,
            [
                ("b".to_string(), TaskState::Accepted),
                ("a".to_string(), TaskState::Running)
            ]
        );
    }

    #[test]
    fn a_follower_refusal_redirects_to_the_leader() {
        let managers = Mutex::new(Managers::new(["m1:1".to_string()]));
        let mut refusal = tonic::Status::failed_precondition("not the leader");
        refusal
            .metadata_mut()
            .insert(LEADER_ADDR_KEY, "m2:1".parse().unwrap());
        assert!(note_redirect(&refusal, &managers));
        assert_eq!(
            managers.lock().pick(None, &mut rand::rng()).as_deref(),
            Some("m2:1")
        );
        assert!(!note_redirect(
            &tonic::Status::unavailable("down"),
            &managers
        ));
        let bare = tonic::Status::failed_precondition("no leader known");
        assert!(!note_redirect(&bare, &managers));
    }
}
