//! The standard gRPC health service: SERVING while the manager runs.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use swarm_api::health::health_check_response::ServingStatus;
use swarm_api::health::health_server::{Health, HealthServer};
use swarm_api::health::{HealthCheckRequest, HealthCheckResponse};
use tonic::{Request, Response, Status};

/// Health checks for load balancers and probes.
#[derive(Debug, Clone, Default)]
pub struct HealthService;

impl HealthService {
    /// The tonic server for this service.
    pub fn into_server(self) -> HealthServer<Self> {
        HealthServer::new(self)
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn check(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        }))
    }

    async fn watch(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let first = HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        };
        Ok(Response::new(Box::pin(
            futures::stream::iter([Ok(first)]).chain(futures::stream::pending()),
        )))
    }
}
