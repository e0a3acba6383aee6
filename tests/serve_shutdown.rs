//! Graceful shutdown of the one-port server: WebSockets get close 1001, gRPC and gRPC-Web calls in
//! flight finish, health says NOT_SERVING first, and the drain deadline bounds the wait.

#![cfg(feature = "grpc-web")]

mod common;
#[path = "common/grpc.rs"]
mod grpc_common;
#[path = "common/serve.rs"]
mod serve_common;

use std::time::{Duration, Instant};

use common::{connect, expect_close, round_trip};
use grpc_common::{Gate, within};
use serve_common::{TestApp, grpc_web_hello, http1, parse_grpc_web};
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use wsgrpc::grpc::pb::{HelloRequest, greeter_client::GreeterClient};
use wsgrpc::grpc::{Config as GrpcConfig, GreeterService, GrpcServer};
use wsgrpc::serve::{App, Cors};
use wsgrpc::ws::{Handler, Message, SessionHandle, handler_fn};

fn echo() -> impl Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_get_1001_while_calls_in_flight_finish() {
    let (gate, mut control) = Gate::new();
    let parts = GrpcServer::with_greeter(GreeterService::new(gate))
        .into_parts()
        .await
        .expect("parts");
    let mut app = TestApp::start(
        App::new()
            .websocket(echo())
            .grpc(parts)
            .grpc_web(Cors::default()),
    )
    .await;
    let addr = app.addr;

    let channel = within(
        "connect",
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect(),
    )
    .await
    .expect("connect");
    let mut watch = within(
        "Watch",
        HealthClient::new(channel.clone()).watch(HealthCheckRequest::default()),
    )
    .await
    .expect("watch")
    .into_inner();
    let first = within("health", watch.message()).await.expect("ok");
    assert_eq!(first.expect("status").status(), ServingStatus::Serving);

    let mut client = GreeterClient::new(channel);
    let native = tokio::spawn(async move {
        client
            .say_hello(HelloRequest {
                name: "native".into(),
            })
            .await
    });
    let web = tokio::spawn(http1(addr, grpc_web_hello(addr, "web", None)));
    let mut entered = vec![control.entered().await, control.entered().await];
    entered.sort();
    assert_eq!(entered, ["native", "web"]);

    let mut websocket = connect(&format!("ws://{addr}/chat")).await;
    round_trip(&mut websocket, "before shutdown").await;

    app.signal_shutdown();

    // Health first, then every WebSocket gets 1001, while both calls are still held.
    let status = within("NOT_SERVING", watch.message()).await.expect("ok");
    assert_eq!(status.expect("status").status(), ServingStatus::NotServing);
    drop(watch);
    let frame = expect_close(&mut websocket).await;
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "server shutting down");
    assert!(!native.is_finished() && !web.is_finished());

    // The calls in flight complete normally.
    control.release(2);
    let reply = within("native call", native)
        .await
        .expect("task")
        .expect("call");
    assert_eq!(reply.into_inner().message, "Hello native");
    let response = within("grpc-web call", web).await.expect("task");
    assert_eq!(
        parse_grpc_web(response.body()).0.as_deref(),
        Some("Hello web")
    );

    app.stopped().await.expect("clean shutdown");
}

#[tokio::test]
async fn drain_deadline_and_websocket_wait_are_bounded() {
    let (gate, mut control) = Gate::new();
    let parts = GrpcServer::with_greeter(GreeterService::new(gate))
        .config(GrpcConfig::default().drain_timeout(Duration::from_millis(200)))
        .into_parts()
        .await
        .expect("parts");
    let mut app = TestApp::start(
        App::new()
            .websocket(echo())
            .websocket_config(
                wsgrpc::ws::Config::default().shutdown_timeout(Duration::from_millis(200)),
            )
            .grpc(parts),
    )
    .await;
    let addr = app.addr;
    let channel = within(
        "connect",
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect(),
    )
    .await
    .expect("connect");
    let mut client = GreeterClient::new(channel);
    let stuck = tokio::spawn(async move {
        client
            .say_hello(HelloRequest {
                name: "stuck".into(),
            })
            .await
    });
    control.entered().await;
    // A WebSocket client that never answers the close frame.
    let _deaf = connect(&format!("ws://{addr}/ws")).await;
    app.wait_websockets(1).await;

    let started = Instant::now();
    app.signal_shutdown();
    app.stopped().await.expect("shutdown after the deadlines");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let result = within("the stuck call to end", stuck).await.expect("task");
    assert!(result.is_err(), "{result:?}");
    app.wait_websockets(0).await;
}
