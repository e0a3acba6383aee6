//! Bearer-token auth: calls without the right token are UNAUTHENTICATED, health stays open.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use grpc_common::{TestServer, within};
use tonic::{Code, Request, metadata::MetadataValue, service::Interceptor};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wsgrpc::grpc::{GrpcServer, layer::BearerToken, pb::HelloRequest};

const TOKEN: &str = "correct horse battery staple";

fn hello_with(authorization: Option<&str>) -> Request<HelloRequest> {
    let mut request = Request::new(HelloRequest {
        name: "world".into(),
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", MetadataValue::try_from(value).unwrap());
    }
    request
}

#[tokio::test]
async fn calls_without_the_token_are_unauthenticated() {
    let server = TestServer::start(GrpcServer::new().bearer_token(TOKEN)).await;
    let mut client = server.client().await;

    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Basic Zm9vOmJhcg=="),
        Some(TOKEN),
    ] {
        let status = within("SayHello", client.say_hello(hello_with(authorization)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{authorization:?}");
    }

    let reply = within(
        "SayHello",
        client.say_hello(hello_with(Some(&format!("Bearer {TOKEN}")))),
    )
    .await
    .unwrap();
    assert_eq!(reply.into_inner().message, "Hello world");
}

#[tokio::test]
async fn health_checks_need_no_token() {
    let server = TestServer::start(GrpcServer::new().bearer_token(TOKEN)).await;
    let mut health = HealthClient::new(server.channel().await);
    let response = within("Check", health.check(HealthCheckRequest::default())).await;
    assert!(response.is_ok(), "{response:?}");
}

#[tokio::test]
async fn without_a_token_configured_everything_is_open() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;
    let reply = within("SayHello", client.say_hello(hello_with(None)))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello world");
}

#[test]
fn the_token_also_works_as_a_tonic_interceptor() {
    let mut token = BearerToken::new(TOKEN);
    let mut request = Request::new(());
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {TOKEN}")).unwrap(),
    );
    assert!(token.call(request).is_ok());
    let status = token.call(Request::new(())).unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
