//! `grpc.health.v1.Health`: Check for the server and per service, and Watch following changes.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use grpc_common::{TestServer, within};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use wsgrpc::grpc::GrpcServer;

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

#[tokio::test]
async fn check_reports_the_server_and_the_greeter_as_serving() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "helloworld.Greeter"] {
        let response = within("Check", health.check(check(service))).await.unwrap();
        assert_eq!(
            response.into_inner().status(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
}

#[tokio::test]
async fn check_of_an_unknown_service_is_not_found() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut health = HealthClient::new(server.channel().await);
    let status = within("Check", health.check(check("no.such.Service")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn check_follows_the_health_handle() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut health = HealthClient::new(server.channel().await);
    server.health.set_not_serving().await;
    for service in ["", "helloworld.Greeter"] {
        let response = within("Check", health.check(check(service))).await.unwrap();
        assert_eq!(
            response.into_inner().status(),
            ServingStatus::NotServing,
            "{service:?}"
        );
    }
    server.health.set_serving().await;
    let response = within("Check", health.check(check(""))).await.unwrap();
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
}

#[tokio::test]
async fn watch_streams_every_change() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut health = HealthClient::new(server.channel().await);
    let mut updates = within("Watch", health.watch(check("helloworld.Greeter")))
        .await
        .unwrap()
        .into_inner();

    let mut next = async || {
        within("a health update", updates.message())
            .await
            .unwrap()
            .expect("watch ended")
            .status()
    };
    assert_eq!(next().await, ServingStatus::Serving);
    server.health.set_not_serving().await;
    assert_eq!(next().await, ServingStatus::NotServing);
    server.health.set_serving().await;
    assert_eq!(next().await, ServingStatus::Serving);
}

/// health.proto: Watch of an unknown service sends SERVICE_UNKNOWN and does not end the call; the
/// real status follows once the service becomes known. (tonic-health ends it with NOT_FOUND.)
#[tokio::test]
async fn watch_of_an_unknown_service_stays_open_until_it_is_known() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut health = HealthClient::new(server.channel().await);
    let mut updates = within("Watch", health.watch(check("late.v1.Service")))
        .await
        .expect("Watch of an unknown service is not an error")
        .into_inner();
    let mut next = async || {
        within("a health update", updates.message())
            .await
            .unwrap()
            .expect("watch ended")
            .status()
    };
    assert_eq!(next().await, ServingStatus::ServiceUnknown);
    // Other services changing send this watcher nothing; its own service appearing does.
    server.health.set_not_serving().await;
    server
        .health
        .set_service_status("late.v1.Service", wsgrpc::grpc::ServingStatus::Serving);
    assert_eq!(next().await, ServingStatus::Serving);
}
