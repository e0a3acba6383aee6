//! `SayHello` over a real connection: the reference greeting, a custom greeting, and validation.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use grpc_common::{TestServer, within};
use tonic::Code;
use wsgrpc::grpc::{DEFAULT_MAX_NAME_LEN, GreeterService, GrpcServer, greet_fn, pb::HelloRequest};

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
    }
}

#[tokio::test]
async fn says_hello_like_the_reference_server() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;
    let reply = within("SayHello", client.say_hello(hello("world")))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello world");
}

#[tokio::test]
async fn custom_greeting_logic_replaces_the_default() {
    let greeter = GreeterService::new(greet_fn(|name: String| async move {
        Ok(format!("Bonjour {name}"))
    }));
    let server = TestServer::start(GrpcServer::with_greeter(greeter)).await;
    let mut client = server.client().await;
    let reply = within("SayHello", client.say_hello(hello("monde")))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Bonjour monde");
}

#[tokio::test]
async fn custom_greeting_errors_reach_the_client() {
    let greeter = GreeterService::new(greet_fn(|_name: String| async move {
        Err(tonic::Status::permission_denied("no greetings today"))
    }));
    let server = TestServer::start(GrpcServer::with_greeter(greeter)).await;
    let mut client = server.client().await;
    let status = within("SayHello", client.say_hello(hello("x")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "no greetings today");
}

#[tokio::test]
async fn empty_name_is_an_invalid_argument() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;
    let status = within("SayHello", client.say_hello(hello("")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "name must not be empty");
}

#[tokio::test]
async fn over_long_name_is_an_invalid_argument_and_the_limit_is_inclusive() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;

    let longest = "a".repeat(DEFAULT_MAX_NAME_LEN);
    let reply = within("SayHello", client.say_hello(hello(&longest)))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, format!("Hello {longest}"));

    let too_long = "a".repeat(DEFAULT_MAX_NAME_LEN + 1);
    let status = within("SayHello", client.say_hello(hello(&too_long)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
