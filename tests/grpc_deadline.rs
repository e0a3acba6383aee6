//! Deadlines: the client's `grpc-timeout` and the server's own timeout end a slow call with
//! DEADLINE_EXCEEDED, and the server keeps serving.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::time::Duration;

use grpc_common::{TestServer, raw_h2_call, within};
use prost::Message;
use tonic::{Code, Request};
use wsgrpc::grpc::{Config, GreeterService, GrpcServer, greet_fn, pb::HelloRequest};

/// A greeting that never finishes unless the name is `fast`.
fn stuck_greeter() -> GreeterService<impl wsgrpc::grpc::Greet> {
    GreeterService::new(greet_fn(|name: String| async move {
        if name != "fast" {
            std::future::pending::<()>().await;
        }
        Ok(format!("Hello {name}"))
    }))
}

const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
    }
}

/// `grpc-timeout` sent by a bare HTTP/2 client: tonic's client would enforce the same deadline
/// itself, and the test must see the server's answer.
#[tokio::test]
async fn client_grpc_timeout_is_honoured_by_the_server() {
    let server = TestServer::start(GrpcServer::with_greeter(stuck_greeter())).await;

    let slow = hello("slow").encode_to_vec();
    let outcome = within(
        "SayHello",
        raw_h2_call(server.addr, SAY_HELLO, &[("grpc-timeout", "100m")], &slow),
    )
    .await;
    assert_eq!(outcome.grpc_status.as_deref(), Some("4"), "{outcome:?}"); // DEADLINE_EXCEEDED
    assert_eq!(outcome.grpc_message.as_deref(), Some("deadline%20exceeded"));

    let mut client = server.client().await;
    let reply = within("SayHello", client.say_hello(hello("fast")))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello fast");
}

#[tokio::test]
async fn tonic_clients_see_deadline_exceeded_or_their_own_cancellation() {
    let server = TestServer::start(GrpcServer::with_greeter(stuck_greeter())).await;
    let mut client = server.client().await;
    let mut request = Request::new(hello("slow"));
    request.set_timeout(Duration::from_millis(100));
    let status = within("SayHello", client.say_hello(request))
        .await
        .unwrap_err();
    // tonic's channel enforces the same deadline locally, so whichever side fires first wins.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
}

#[tokio::test]
async fn server_timeout_applies_without_a_client_deadline() {
    let config = Config::default().timeout(Duration::from_millis(100));
    let server = TestServer::start(GrpcServer::with_greeter(stuck_greeter()).config(config)).await;
    let mut client = server.client().await;

    let status = within("SayHello", client.say_hello(hello("slow")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);

    let reply = within("SayHello", client.say_hello(hello("fast")))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello fast");
}

#[tokio::test]
async fn shorter_client_deadline_wins_over_the_server_timeout() {
    let config = Config::default().timeout(Duration::from_secs(60));
    let server = TestServer::start(GrpcServer::with_greeter(stuck_greeter()).config(config)).await;
    let slow = hello("slow").encode_to_vec();
    // `within` allows 10 s: only the 100 ms client deadline can end the call in time.
    let outcome = within(
        "SayHello",
        raw_h2_call(server.addr, SAY_HELLO, &[("grpc-timeout", "100m")], &slow),
    )
    .await;
    assert_eq!(outcome.grpc_status.as_deref(), Some("4"), "{outcome:?}");
}

#[tokio::test]
async fn shorter_server_timeout_wins_over_the_client_deadline() {
    let config = Config::default().timeout(Duration::from_millis(100));
    let server = TestServer::start(GrpcServer::with_greeter(stuck_greeter()).config(config)).await;
    let slow = hello("slow").encode_to_vec();
    let outcome = within(
        "SayHello",
        raw_h2_call(server.addr, SAY_HELLO, &[("grpc-timeout", "1H")], &slow),
    )
    .await;
    assert_eq!(outcome.grpc_status.as_deref(), Some("4"), "{outcome:?}");
}
