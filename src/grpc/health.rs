//! The health state the server reports through `grpc.health.v1.Health`.
//!
//! A thin handle over tonic-health's reporter that knows which services the server registered, so
//! shutdown can flip all of them (and the overall status, service name `""`) to NOT_SERVING in one
//! call before it stops taking calls: load balancers watching health move traffic away first.

use tonic_health::{ServingStatus, server::HealthReporter};

/// Updates the serving status of the server and its services; cheap to clone.
#[derive(Debug, Clone)]
pub struct HealthHandle {
    reporter: HealthReporter,
    services: Vec<&'static str>,
}

impl HealthHandle {
    pub(crate) fn new(reporter: HealthReporter, services: Vec<&'static str>) -> Self {
        HealthHandle { reporter, services }
    }

    /// Reports every registered service, and the server as a whole, as SERVING.
    pub async fn set_serving(&self) {
        self.set_all(ServingStatus::Serving).await;
    }

    /// Reports every registered service, and the server as a whole, as NOT_SERVING.
    pub async fn set_not_serving(&self) {
        self.set_all(ServingStatus::NotServing).await;
    }

    /// The names of the services whose health is reported (besides the overall `""`).
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    /// tonic-health's reporter, to report services of your own.
    pub fn reporter(&self) -> &HealthReporter {
        &self.reporter
    }

    async fn set_all(&self, status: ServingStatus) {
        // The overall status goes last when serving and first when not, so a checker never sees the
        // server up while one of its services is still down.
        if status == ServingStatus::NotServing {
            self.reporter.set_service_status("", status).await;
        }
        for service in &self.services {
            self.reporter.set_service_status(service, status).await;
        }
        if status == ServingStatus::Serving {
            self.reporter.set_service_status("", status).await;
        }
    }
}
