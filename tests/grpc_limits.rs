//! Hostile input: an over-limit message and bytes that are not a `HelloRequest` get an error status,
//! and the server keeps serving, on the same connection and on new ones.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use bytes::Bytes;
use grpc_common::{TestServer, raw_unary, within};
use tonic::{Code, transport::Channel};
use wsgrpc::grpc::{
    Config, GrpcServer,
    pb::{HelloRequest, greeter_client::GreeterClient},
};

const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

async fn still_serves(channel: Channel) {
    let mut client = GreeterClient::new(channel);
    let reply = within(
        "SayHello",
        client.say_hello(HelloRequest {
            name: "again".into(),
        }),
    )
    .await
    .expect("server still serves");
    assert_eq!(reply.into_inner().message, "Hello again");
}

#[tokio::test]
async fn over_limit_request_is_out_of_range_and_the_server_survives() {
    let config = Config::default().max_decoding_message_size(1024);
    let server = TestServer::start(GrpcServer::new().config(config)).await;
    let channel = server.channel().await;
    let mut client = GreeterClient::new(channel.clone());

    let request = HelloRequest {
        name: "a".repeat(2048),
    };
    let status = within("SayHello", client.say_hello(request))
        .await
        .unwrap_err();
    // tonic's codec answers an oversize message with OUT_OF_RANGE (grpc-go says RESOURCE_EXHAUSTED).
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    still_serves(channel).await;
    still_serves(server.channel().await).await;
}

#[tokio::test]
async fn default_limit_is_four_mebibytes_inclusive() {
    let server = TestServer::start(GrpcServer::new()).await;
    let channel = server.channel().await;
    let mut client = GreeterClient::new(channel.clone());

    // A name of n bytes encodes to n + 5 bytes (tag, 4-byte length varint).
    let at_limit = HelloRequest {
        name: "a".repeat(4 * 1024 * 1024 - 5),
    };
    assert_eq!(prost::Message::encoded_len(&at_limit), 4 * 1024 * 1024);
    let status = within("SayHello", client.say_hello(at_limit))
        .await
        .unwrap_err();
    // Decoded fine; only then refused by the Greeter's own name-length check.
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let over_limit = HelloRequest {
        name: "a".repeat(4 * 1024 * 1024 - 4),
    };
    let status = within("SayHello", client.say_hello(over_limit))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    still_serves(channel).await;
}

#[tokio::test]
async fn bytes_that_are_not_a_hello_request_get_internal_and_the_server_survives() {
    let server = TestServer::start(GrpcServer::new()).await;
    let channel = server.channel().await;

    // Field 1 claims 5 bytes but only 1 follows; then field 1 holding invalid UTF-8.
    for garbage in [&b"\x0a\x05a"[..], &b"\x0a\x02\xff\xfe"[..]] {
        let status = within(
            "SayHello",
            raw_unary(channel.clone(), SAY_HELLO, Bytes::from_static(garbage)),
        )
        .await
        .unwrap_err();
        // A message that does not decode is INTERNAL in tonic, as in grpc-go.
        assert_eq!(status.code(), Code::Internal, "{garbage:?}: {status:?}");
    }

    still_serves(channel).await;
}

#[tokio::test]
async fn unknown_method_is_unimplemented() {
    let server = TestServer::start(GrpcServer::new()).await;
    let channel = server.channel().await;
    let status = within(
        "unknown method",
        raw_unary(
            channel.clone(),
            "/helloworld.Greeter/SayGoodbye",
            Bytes::new(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    still_serves(channel).await;
}
