//! `grpc.health.v1.Health`, exactly as `health.proto` specifies it, and the handle that sets the
//! statuses it reports.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, RwLock},
};

use futures::{Stream, stream};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus as Wire,
    health_server::{Health, HealthServer},
};

pub use tonic_health::ServingStatus;

/// The statuses, shared by the handle and the service.
#[derive(Debug)]
struct State {
    statuses: RwLock<HashMap<String, ServingStatus>>,
    /// Bumped on every change, to wake the `Watch` streams.
    changed: watch::Sender<u64>,
}

impl State {
    fn status(&self, service: &str) -> Option<ServingStatus> {
        let statuses = self
            .statuses
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        statuses.get(service).copied()
    }
}

/// Updates the serving status of the server and its services; cheap to clone.
///
/// Made by [`GrpcServer::into_parts`](super::GrpcServer::into_parts) (available as
/// [`GrpcParts::health`](super::GrpcParts::health)), or by [`HealthHandle::new`] for parts you
/// assemble yourself.
#[derive(Debug, Clone)]
pub struct HealthHandle {
    state: Arc<State>,
    services: Arc<[String]>,
}

impl HealthHandle {
    /// A handle for these services (full names such as `todo.v1.Todos`), all unknown until
    /// [`set_serving`](Self::set_serving) is called; `""`, the server as a whole, is always known.
    pub fn new<I, S>(services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let (changed, _) = watch::channel(0);
        let statuses = HashMap::from([(String::new(), ServingStatus::NotServing)]);
        HealthHandle {
            state: Arc::new(State {
                statuses: RwLock::new(statuses),
                changed,
            }),
            services: services.into_iter().map(Into::into).collect(),
        }
    }

    /// The `grpc.health.v1.Health` service reporting this handle's statuses, to add to routes.
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            state: Arc::clone(&self.state),
        })
    }

    /// Reports every registered service, and the server as a whole, as SERVING. Async for the
    /// callers that await it; it completes at once.
    pub async fn set_serving(&self) {
        self.set_all(ServingStatus::Serving);
    }

    /// Reports every registered service, and the server as a whole, as NOT_SERVING. Async for the
    /// callers that await it; it completes at once.
    pub async fn set_not_serving(&self) {
        self.set_all(ServingStatus::NotServing);
    }

    /// The names of the services whose health is reported (besides the overall `""`).
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Sets the status of one service (any name: a service of your own that is not routed here
    /// too) and wakes its watchers.
    pub fn set_service_status(&self, service: &str, status: ServingStatus) {
        self.set_statuses([service], status);
    }

    /// The status `Check` reports for `service`; `None` when it is unknown (NOT_FOUND).
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        self.state.status(service)
    }

    fn set_all(&self, status: ServingStatus) {
        // One update under one lock: a checker never sees the server up while one of its
        // services is still down, or the reverse.
        let names = self.services.iter().map(String::as_str).chain([""]);
        self.set_statuses(names, status);
    }

    fn set_statuses<'a>(&self, services: impl IntoIterator<Item = &'a str>, status: ServingStatus) {
        {
            let mut statuses = self
                .state
                .statuses
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            for service in services {
                statuses.insert(service.to_owned(), status);
            }
        }
        self.state.changed.send_modify(|version| *version += 1);
    }
}

/// The `grpc.health.v1.Health` implementation behind a [`HealthHandle`].
///
/// The server registers every service it serves (and the server as a whole, service name `""`) as
/// SERVING at start; shutdown flips all of them to NOT_SERVING in one call before it stops taking
/// calls, so load balancers watching health move traffic away first.
///
/// This is our own implementation of the generated `Health` trait rather than tonic-health's
/// `HealthService`, because tonic-health 0.14 deviates from `health.proto` on `Watch`: for a
/// service it does not know it ends the call with NOT_FOUND, where the proto says the server
/// "will send a message setting the serving status to SERVICE_UNKNOWN but will *not* terminate
/// the call", and sends the real status once the service becomes known. `Check` for an unknown
/// service is NOT_FOUND, as the proto says.
///
/// Watchers do not get a channel each: one `watch` channel carries a change counter, and every
/// `Watch` stream re-reads the status of its own service when it moves. A client watching any
/// number of unknown names therefore adds nothing to the server's table, and each stream sends
/// only when its service's status actually changed (the proto allows dropping intermediate
/// states, which a slow watcher does: it sees the latest).
#[derive(Debug, Clone)]
pub struct HealthService {
    state: Arc<State>,
}

/// The stream `Watch` answers with.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

fn wire(status: Option<ServingStatus>) -> Wire {
    match status {
        None => Wire::ServiceUnknown,
        Some(ServingStatus::Serving) => Wire::Serving,
        Some(ServingStatus::NotServing) => Wire::NotServing,
        Some(ServingStatus::Unknown) => Wire::Unknown,
    }
}

fn response(status: Wire) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        match self.state.status(service) {
            Some(status) => Ok(Response::new(response(wire(Some(status))))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let service = request.into_inner().service;
        let mut changed = self.state.changed.subscribe();
        changed.mark_changed();
        let state = Arc::clone(&self.state);
        // Each step waits for a change, then sends the status if it differs from the last one
        // sent. The first `changed()` returns at once (marked above): the current status,
        // SERVICE_UNKNOWN included, goes out immediately as the proto requires.
        let updates = stream::unfold(
            (state, changed, service, None::<Wire>),
            |(state, mut changed, service, mut last)| async move {
                loop {
                    // The sender lives in the state we hold, so this only fails if that is gone.
                    if changed.changed().await.is_err() {
                        return None;
                    }
                    let current = wire(state.status(&service));
                    if last != Some(current) {
                        last = Some(current);
                        return Some((Ok(response(current)), (state, changed, service, last)));
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(updates)))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn check_knows_registered_services_only() {
        let health = HealthHandle::new(["a.A"]);
        let service = HealthService {
            state: Arc::clone(&health.state),
        };
        let check = |name: &str| {
            service.check(Request::new(HealthCheckRequest {
                service: name.to_owned(),
            }))
        };
        assert_eq!(
            check("a.A").await.unwrap_err().code(),
            tonic::Code::NotFound
        );
        health.set_serving().await;
        let status = check("a.A").await.unwrap().into_inner().status;
        assert_eq!(status, i32::from(Wire::Serving));
        assert_eq!(
            check("").await.unwrap().into_inner().status,
            i32::from(Wire::Serving)
        );
        assert_eq!(
            check("b.B").await.unwrap_err().code(),
            tonic::Code::NotFound
        );
    }

    #[tokio::test]
    async fn watch_of_an_unknown_service_waits_for_it() {
        let health = HealthHandle::new(["a.A"]);
        let service = HealthService {
            state: Arc::clone(&health.state),
        };
        let mut updates = service
            .watch(Request::new(HealthCheckRequest {
                service: "late.L".to_owned(),
            }))
            .await
            .unwrap()
            .into_inner();
        let first = updates.next().await.unwrap().unwrap();
        assert_eq!(first.status, i32::from(Wire::ServiceUnknown));
        // A change elsewhere sends nothing; the service becoming known does.
        health.set_serving().await;
        health.set_service_status("late.L", ServingStatus::Serving);
        let next = updates.next().await.unwrap().unwrap();
        assert_eq!(next.status, i32::from(Wire::Serving));
    }
}
