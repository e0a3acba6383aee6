//! Graceful shutdown: health flips to NOT_SERVING first, the call in flight finishes, new
//! connections are refused, and the drain deadline bounds how long a stuck call can hold it up.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::time::{Duration, Instant};

use grpc_common::{Gate, TestServer, within};
use tokio::net::TcpStream;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use wsgrpc::grpc::{Config, GreeterService, GrpcServer, pb::HelloRequest};

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
    }
}

/// Resolves once connecting to `server` fails, that is once the listener is closed.
async fn connections_refused(server: &TestServer) {
    while TcpStream::connect(server.addr).await.is_ok() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn in_flight_call_finishes_then_the_server_refuses() {
    let (gate, mut control) = Gate::new();
    let mut server = TestServer::start(GrpcServer::with_greeter(GreeterService::new(gate))).await;
    let channel = server.channel().await;

    let mut health = HealthClient::new(channel.clone());
    let mut watch = within("Watch", health.watch(HealthCheckRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let status = within("first health update", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.status(), ServingStatus::Serving);

    let mut client = wsgrpc::grpc::pb::greeter_client::GreeterClient::new(channel.clone());
    let in_flight = tokio::spawn(async move { client.say_hello(hello("in flight")).await });
    assert_eq!(control.entered().await, "in flight");

    server.signal_shutdown();

    // First: health says NOT_SERVING, while the call is still running.
    let status = within("NOT_SERVING", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.status(), ServingStatus::NotServing);
    // A Watch never ends by itself; this client is done with it.
    drop(watch);

    // New connections are refused while the call is still in flight.
    within("the listener to close", connections_refused(&server)).await;
    assert!(!in_flight.is_finished());

    // The call in flight completes normally.
    control.release(1);
    let reply = within("the in-flight call", in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello in flight");

    // Then the server is done, and the old connection serves nothing more.
    server.stopped().await.expect("clean shutdown");
    let mut client = wsgrpc::grpc::pb::greeter_client::GreeterClient::new(channel);
    let status = within("a call after shutdown", client.say_hello(hello("late")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn drain_deadline_closes_calls_that_do_not_finish() {
    let (gate, mut control) = Gate::new();
    let config = Config::default().drain_timeout(Duration::from_millis(200));
    let mut server =
        TestServer::start(GrpcServer::with_greeter(GreeterService::new(gate)).config(config)).await;
    let mut client = server.client().await;

    let stuck = tokio::spawn(async move { client.say_hello(hello("stuck")).await });
    control.entered().await;

    let started = Instant::now();
    server.signal_shutdown();
    server.stopped().await.expect("shutdown after the deadline");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "returned after {took:?}, before the deadline"
    );

    // The stuck call was cut off, not left hanging.
    let result = within("the stuck call to end", stuck).await.unwrap();
    assert!(result.is_err(), "{result:?}");
}
