//! The two streaming calls, and backpressure: a client that stops reading must stop the server.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::time::Duration;

use futures::StreamExt;
use grpc_common::{Counting, TestServer, within};
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};
use wsgrpc::grpc::{
    DEFAULT_STREAM_REPLIES, GreeterService, GrpcServer,
    pb::{HelloRequest, greeter_client::GreeterClient},
};

/// Size of one reply in the backpressure tests.
const REPLY_LEN: usize = 16 * 1024;
/// How far the server may run ahead of a client that stopped reading, in replies. What can sit in
/// between is the client's flow-control window (64 KiB below), hyper's per-stream send buffer
/// (400 KiB) and tonic's encode buffer (32 KiB): about 31 replies of 16 KiB. Four times that leaves
/// room for slack; a server that buffered without bound would run through all 100 000.
const AHEAD_BOUND: usize = 128;
/// How long a stopped client waits to see whether the server keeps producing.
const OBSERVE: Duration = Duration::from_millis(500);

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
    }
}

/// A connection with a small receive window, so the bound above is tight.
async fn small_window_client(server: &TestServer) -> GreeterClient<Channel> {
    let endpoint = Endpoint::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024);
    GreeterClient::new(within("connect", endpoint.connect()).await.unwrap())
}

#[tokio::test]
async fn server_stream_sends_the_configured_number_of_greetings() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;
    let replies = within(
        "SayHelloStreamReply",
        client.say_hello_stream_reply(hello("world")),
    )
    .await
    .unwrap()
    .into_inner();
    let messages: Vec<_> = within(
        "all replies",
        replies.map(|reply| reply.unwrap().message).collect(),
    )
    .await;
    assert_eq!(
        messages,
        vec!["Hello world".to_owned(); DEFAULT_STREAM_REPLIES]
    );
}

#[tokio::test]
async fn server_stream_refuses_an_empty_name_before_any_reply() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;
    let status = within(
        "SayHelloStreamReply",
        client.say_hello_stream_reply(hello("")),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn bidi_stream_greets_each_name_in_order() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;
    let names = futures::stream::iter(["ada", "grace", "linus"].map(hello));
    let replies = within("SayHelloBidiStream", client.say_hello_bidi_stream(names))
        .await
        .unwrap()
        .into_inner();
    let messages: Vec<_> = within(
        "all replies",
        replies.map(|reply| reply.unwrap().message).collect(),
    )
    .await;
    assert_eq!(messages, ["Hello ada", "Hello grace", "Hello linus"]);
}

#[tokio::test]
async fn bidi_stream_ends_with_invalid_argument_on_a_bad_name() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;
    let names = futures::stream::iter(["ada", "", "linus"].map(hello));
    let mut replies = within("SayHelloBidiStream", client.say_hello_bidi_stream(names))
        .await
        .unwrap()
        .into_inner();
    let first = within("first reply", replies.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.message, "Hello ada");
    let status = within("the error", replies.message()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn slow_consumer_of_the_server_stream_stalls_the_server() {
    let counting = Counting::new(REPLY_LEN);
    let greeter = GreeterService::new(counting.clone()).stream_replies(100_000);
    let server = TestServer::start(GrpcServer::with_greeter(greeter)).await;
    let mut client = small_window_client(&server).await;

    let mut replies = within(
        "SayHelloStreamReply",
        client.say_hello_stream_reply(hello("slow")),
    )
    .await
    .unwrap()
    .into_inner();
    within("first reply", replies.message())
        .await
        .unwrap()
        .unwrap();

    // The client now reads nothing: the server must stop producing after a bounded number.
    let ran_ahead = tokio::time::timeout(OBSERVE, counting.produced_more_than(AHEAD_BOUND)).await;
    assert!(
        ran_ahead.is_err(),
        "server produced {} replies for a client that read 1",
        counting.produced()
    );

    // Reading resumes the stream, and the server never gets further ahead than the bound.
    for read in 2..=400 {
        let reply = within("next reply", replies.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply.message.len(), REPLY_LEN);
        let produced = counting.produced();
        assert!(
            produced <= read + AHEAD_BOUND,
            "{produced} produced for {read} read"
        );
    }
}

#[tokio::test]
async fn slow_consumer_of_the_bidi_stream_stalls_the_server() {
    let counting = Counting::new(REPLY_LEN);
    let server = TestServer::start(GrpcServer::with_greeter(GreeterService::new(
        counting.clone(),
    )))
    .await;
    let mut client = small_window_client(&server).await;

    // An endless supply of names: only backpressure can keep the server's work bounded.
    let names = futures::stream::iter(0u64..).map(|i| hello(&format!("name {i}")));
    let mut replies = within("SayHelloBidiStream", client.say_hello_bidi_stream(names))
        .await
        .unwrap()
        .into_inner();
    within("first reply", replies.message())
        .await
        .unwrap()
        .unwrap();

    let ran_ahead = tokio::time::timeout(OBSERVE, counting.produced_more_than(AHEAD_BOUND)).await;
    assert!(
        ran_ahead.is_err(),
        "server greeted {} names for a client that read 1 reply",
        counting.produced()
    );

    for read in 2..=400 {
        within("next reply", replies.message())
            .await
            .unwrap()
            .unwrap();
        let produced = counting.produced();
        assert!(
            produced <= read + AHEAD_BOUND,
            "{produced} greeted for {read} read"
        );
    }
}
