//! Compression: gzip and zstd round trips, refusal of an encoding that is not accepted, and the
//! decode limit applied after decompression.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use grpc_common::{TestServer, within};
use tonic::Code;
use wsgrpc::grpc::{
    CompressionEncoding, Config, GreeterService, GrpcServer,
    pb::{HelloRequest, greeter_client::GreeterClient},
};

async fn round_trip(encoding: CompressionEncoding, header: &str) {
    let config = Config::default().send_compressed([encoding]);
    // A long name makes the reply worth compressing and shows it survives intact.
    let greeter = GreeterService::default().max_name_len(64 * 1024);
    let server = TestServer::start(GrpcServer::with_greeter(greeter).config(config)).await;
    let mut client = GreeterClient::new(server.channel().await)
        .send_compressed(encoding)
        .accept_compressed(encoding);

    let name = "compressible ".repeat(1000);
    let reply = within(
        "SayHello",
        client.say_hello(HelloRequest { name: name.clone() }),
    )
    .await
    .unwrap();
    let encoding_used = reply
        .metadata()
        .get("grpc-encoding")
        .map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(
        encoding_used.as_deref(),
        Some(header),
        "reply was not compressed"
    );
    assert_eq!(reply.into_inner().message, format!("Hello {name}"));
}

#[tokio::test]
async fn gzip_round_trip() {
    round_trip(CompressionEncoding::Gzip, "gzip").await;
}

#[tokio::test]
async fn zstd_round_trip() {
    round_trip(CompressionEncoding::Zstd, "zstd").await;
}

#[tokio::test]
async fn replies_are_not_compressed_by_default() {
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = GreeterClient::new(server.channel().await)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    // Compressed requests are accepted by default ...
    let reply = within(
        "SayHello",
        client.say_hello(HelloRequest {
            name: "world".into(),
        }),
    )
    .await
    .unwrap();
    // ... but the reply goes out plain unless `send_compressed` is configured.
    assert!(reply.metadata().get("grpc-encoding").is_none());
    assert_eq!(reply.into_inner().message, "Hello world");
}

#[tokio::test]
async fn compressed_request_in_an_encoding_not_accepted_is_unimplemented() {
    let config = Config::default().accept_compressed([]);
    let server = TestServer::start(GrpcServer::new().config(config)).await;
    let mut client =
        GreeterClient::new(server.channel().await).send_compressed(CompressionEncoding::Zstd);
    let status = within(
        "SayHello",
        client.say_hello(HelloRequest {
            name: "world".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn decompression_is_bounded_by_the_decode_limit() {
    let config = Config::default().max_decoding_message_size(64 * 1024);
    let server = TestServer::start(GrpcServer::new().config(config)).await;
    let channel = server.channel().await;
    let mut client = GreeterClient::new(channel.clone()).send_compressed(CompressionEncoding::Gzip);

    // 1 MiB of one letter gzips to about 1 KiB: small on the wire, too large once inflated.
    let bomb = HelloRequest {
        name: "a".repeat(1024 * 1024),
    };
    let status = within("SayHello", client.say_hello(bomb))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    let mut client = GreeterClient::new(channel);
    let reply = within(
        "SayHello",
        client.say_hello(HelloRequest {
            name: "again".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(reply.into_inner().message, "Hello again");
}
