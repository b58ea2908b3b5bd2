//! The standard gRPC health service (`grpc.health.v1.Health`).
//!
//! A manager is SERVING while it sees an elected leader: control writes,
//! dispatching, joins and renewals all need one, so a load balancer or a
//! probe should send nothing to a manager that lost its quorum. The
//! overall status (service `""`) and that of every service the manager
//! serves are the same; a name it does not serve is NOT_FOUND to `Check`
//! and SERVICE_UNKNOWN to `Watch`, as the protocol asks. `Watch` sends the
//! status at once, then each change.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use swarm_api::health::health_check_response::ServingStatus;
use swarm_api::health::health_server::{Health, HealthServer};
use swarm_api::health::{HealthCheckRequest, HealthCheckResponse};
use swarm_api::v1;
use tonic::{Request, Response, Status};

use crate::dispatcher::ClusterInfo;

/// How often a watch looks at the manager's state.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// Services a manager serves, by their gRPC names.
const SERVICES: &[&str] = &[
    swarm_api::health::health_server::SERVICE_NAME,
    v1::control_server::SERVICE_NAME,
    v1::dispatcher_server::SERVICE_NAME,
    v1::node_ca_server::SERVICE_NAME,
    v1::raft_server::SERVICE_NAME,
    v1::raft_membership_server::SERVICE_NAME,
    v1::logs_server::SERVICE_NAME,
    v1::log_broker_server::SERVICE_NAME,
];

/// Health checks for load balancers and probes.
#[derive(Clone)]
pub struct HealthService {
    info: Arc<dyn ClusterInfo>,
}

impl std::fmt::Debug for HealthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthService").finish_non_exhaustive()
    }
}

impl HealthService {
    /// The health of the manager that `info` describes.
    pub fn new(info: Arc<dyn ClusterInfo>) -> Self {
        HealthService { info }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> HealthServer<Self> {
        HealthServer::new(self)
    }

    /// The status of `service` now; `None` for a name not served here.
    fn status(&self, service: &str) -> Option<ServingStatus> {
        if !service.is_empty() && !SERVICES.contains(&service) {
            return None;
        }
        Some(if self.info.leader_addr().is_some() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        })
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = req.into_inner().service;
        match self.status(&service) {
            Some(s) => Ok(Response::new(response(s))),
            None => Err(Status::not_found(format!(
                "this manager does not serve {service:?}"
            ))),
        }
    }

    async fn watch(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = req.into_inner().service;
        let this = self.clone();
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Sends the first status at once (the first tick is immediate),
        // then only changes.
        let changes =
            futures::stream::unfold((None::<ServingStatus>, tick), move |(last, mut tick)| {
                let this = this.clone();
                let service = service.clone();
                async move {
                    loop {
                        tick.tick().await;
                        let now = this
                            .status(&service)
                            .unwrap_or(ServingStatus::ServiceUnknown);
                        if Some(now) != last {
                            return Some((Ok(response(now)), (Some(now), tick)));
                        }
                    }
                }
            });
        Ok(Response::new(Box::pin(changes)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::StreamExt;
    use swarm_api::v1::WeightedPeer;

    use super::*;

    /// A cluster view whose leader comes and goes.
    #[derive(Default)]
    struct Leader(AtomicBool);

    impl ClusterInfo for Leader {
        fn is_leader(&self) -> bool {
            false
        }
        fn leader_addr(&self) -> Option<String> {
            self.0
                .load(Ordering::SeqCst)
                .then(|| "127.0.0.1:4242".into())
        }
        fn managers(&self) -> Vec<WeightedPeer> {
            Vec::new()
        }
        fn root_ca_pem(&self) -> Vec<u8> {
            Vec::new()
        }
    }

    fn ask(service: &str) -> Request<HealthCheckRequest> {
        Request::new(HealthCheckRequest {
            service: service.into(),
        })
    }

    #[tokio::test]
    async fn check_follows_the_leader_and_refuses_unknown_services() {
        let info = Arc::new(Leader::default());
        let h = HealthService::new(info.clone());
        let status = |r: Response<HealthCheckResponse>| r.into_inner().status();
        assert_eq!(
            status(h.check(ask("")).await.unwrap()),
            ServingStatus::NotServing
        );
        info.0.store(true, Ordering::SeqCst);
        assert_eq!(
            status(h.check(ask("")).await.unwrap()),
            ServingStatus::Serving
        );
        assert_eq!(
            status(h.check(ask("swarm.v1.Dispatcher")).await.unwrap()),
            ServingStatus::Serving
        );
        let err = h.check(ask("swarm.v1.Nope")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    }

    #[tokio::test(start_paused = true)]
    async fn watch_sends_the_status_then_each_change() {
        let info = Arc::new(Leader::default());
        info.0.store(true, Ordering::SeqCst);
        let h = HealthService::new(info.clone());
        let mut w = h.watch(ask("")).await.unwrap().into_inner();
        let mut next = async || w.next().await.unwrap().unwrap().status();
        assert_eq!(next().await, ServingStatus::Serving);
        info.0.store(false, Ordering::SeqCst);
        assert_eq!(next().await, ServingStatus::NotServing);
        info.0.store(true, Ordering::SeqCst);
        assert_eq!(next().await, ServingStatus::Serving);

        let mut unknown = h.watch(ask("nope")).await.unwrap().into_inner();
        assert_eq!(
            unknown.next().await.unwrap().unwrap().status(),
            ServingStatus::ServiceUnknown
        );
    }
}
