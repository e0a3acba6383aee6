//! The concurrency limit: excess calls are shed with RESOURCE_EXHAUSTED, or queued until a slot
//! frees; streaming calls hold their slot while they stream.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::time::Duration;

use grpc_common::{Gate, TestServer, within};
use tonic::Code;
use wsgrpc::grpc::{Config, GreeterService, GrpcServer, pb::HelloRequest};

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
    }
}

#[tokio::test]
async fn load_shedding_refuses_calls_over_the_limit() {
    let (gate, mut control) = Gate::new();
    let config = Config::default().concurrency_limit(1).load_shed(true);
    let server =
        TestServer::start(GrpcServer::with_greeter(GreeterService::new(gate)).config(config)).await;
    let mut client = server.client().await;

    let mut holder = client.clone();
    let first = tokio::spawn(async move { holder.say_hello(hello("first")).await });
    assert_eq!(control.entered().await, "first");

    // The only slot is taken: a second call, even on another connection, is refused at once.
    let mut other = server.client().await;
    let status = within("shed call", other.say_hello(hello("second")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);

    control.release(1);
    let reply = within("first call", first).await.unwrap().unwrap();
    assert_eq!(reply.into_inner().message, "Hello first");

    // The slot is free again.
    control.release(1);
    let reply = within("third call", client.say_hello(hello("third")))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello third");
}

#[tokio::test]
async fn without_load_shedding_excess_calls_wait_for_a_slot() {
    let (gate, mut control) = Gate::new();
    let config = Config::default().concurrency_limit(1);
    let server =
        TestServer::start(GrpcServer::with_greeter(GreeterService::new(gate)).config(config)).await;
    let client = server.client().await;

    let mut holder = client.clone();
    let first = tokio::spawn(async move { holder.say_hello(hello("first")).await });
    assert_eq!(control.entered().await, "first");

    let mut waiter = client.clone();
    let second = tokio::spawn(async move { waiter.say_hello(hello("second")).await });
    // The second call must not reach the greeting while the first holds the slot.
    let early = tokio::time::timeout(Duration::from_millis(300), control.entered()).await;
    assert!(
        early.is_err(),
        "second call ran while the first held the only slot"
    );

    control.release(1);
    within("first call", first).await.unwrap().unwrap();
    assert_eq!(control.entered().await, "second");
    control.release(1);
    let reply = within("second call", second).await.unwrap().unwrap();
    assert_eq!(reply.into_inner().message, "Hello second");
}

#[tokio::test]
async fn a_streaming_call_holds_its_slot_until_the_stream_ends() {
    let (gate, mut control) = Gate::new();
    let config = Config::default().concurrency_limit(1).load_shed(true);
    let greeter = GreeterService::new(gate).stream_replies(2);
    let server = TestServer::start(GrpcServer::with_greeter(greeter).config(config)).await;
    let mut client = server.client().await;

    // Let the first reply through; the second waits at the gate, so the stream stays open.
    control.release(1);
    let mut stream = within(
        "SayHelloStreamReply",
        client.say_hello_stream_reply(hello("s")),
    )
    .await
    .unwrap()
    .into_inner();
    within("first reply", stream.message())
        .await
        .unwrap()
        .unwrap();
    control.entered().await;
    control.entered().await;

    // Headers are sent, but the stream is open: the slot is still taken.
    let mut other = server.client().await;
    let status = within("shed call", other.say_hello(hello("x")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);

    control.release(1);
    while within("rest of the stream", stream.message())
        .await
        .unwrap()
        .is_some()
    {}
    // Later calls pass the gate at once.
    control.release(1000);
    // The slot is released when the body ends; the client may see the end a moment before the
    // server has dropped its side, so allow for that with a bounded retry.
    let reply = within("call after the stream", async {
        loop {
            match other.say_hello(hello("x")).await {
                Ok(reply) => break reply,
                Err(status) if status.code() == Code::ResourceExhausted => {
                    tokio::task::yield_now().await
                }
                Err(status) => panic!("{status:?}"),
            }
        }
    })
    .await;
    assert_eq!(reply.into_inner().message, "Hello x");
}
