//! The assembled routes and layers work without this crate's accept loop: mounted as an axum router
//! behind `GrpcLayer` and served by a bare hyper HTTP/2 connection, as a one-port server would.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use grpc_common::within;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tonic::{Code, Request, metadata::MetadataValue, transport::Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wsgrpc::grpc::{
    Config, GrpcServer,
    pb::{HelloRequest, greeter_client::GreeterClient},
};

#[tokio::test]
async fn routes_and_layer_serve_from_an_axum_router() {
    let parts = GrpcServer::new()
        .bearer_token("t0ken")
        .config(Config::default().concurrency_limit(8))
        .into_parts()
        .await
        .unwrap();
    let router = parts.routes.into_axum_router().layer(parts.layer);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });

    let channel = within(
        "connect",
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap();
    let mut client = GreeterClient::new(channel.clone());

    let status = within(
        "SayHello",
        client.say_hello(HelloRequest {
            name: "world".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut request = Request::new(HelloRequest {
        name: "world".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", MetadataValue::from_static("Bearer t0ken"));
    let reply = within("SayHello", client.say_hello(request)).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello world");

    let mut health = HealthClient::new(channel);
    let response = within("Check", health.check(HealthCheckRequest::default())).await;
    assert!(response.is_ok(), "{response:?}");
}

/// Parts assembled by hand, from routes of one's own: `GrpcParts::new` and the public fields are
/// enough to serve them with the crate's accept loop.
#[tokio::test]
async fn parts_from_routes_of_ones_own() {
    use wsgrpc::grpc::{
        GreeterService, GrpcParts, HealthHandle, pb::greeter_server::GreeterServer,
    };

    let health = HealthHandle::new(["helloworld.Greeter"]);
    let routes = tonic::service::Routes::new(GreeterServer::new(GreeterService::default()))
        .add_service(health.service());
    health.set_serving().await;
    let mut parts = GrpcParts::new(routes, health, Config::default());
    parts.config.drain_timeout = std::time::Duration::from_secs(1);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(parts.serve(listener, async {
        let _ = stopped.await;
    }));

    let channel = within(
        "connect",
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap();
    let reply = within(
        "SayHello",
        GreeterClient::new(channel.clone()).say_hello(HelloRequest { name: "own".into() }),
    )
    .await
    .unwrap();
    assert_eq!(reply.into_inner().message, "Hello own");
    let checked = within(
        "Check",
        HealthClient::new(channel).check(HealthCheckRequest {
            service: "helloworld.Greeter".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        checked.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let _ = stop.send(());
    within("the server to stop", server).await.unwrap().unwrap();
}
