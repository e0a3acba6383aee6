//! The gRPC HTTP/2 spec's rule for non-gRPC requests: a content type that does not start with
//! `application/grpc`, or none, gets `415 Unsupported Media Type`, never a `200` that a plain HTTP
//! client would read as success. Sent with a bare HTTP/2 client (hyper), as such a client would.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use bytes::Bytes;
use grpc_common::{TestServer, within};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use prost::Message;
use wsgrpc::grpc::{GrpcServer, pb::HelloRequest};

struct Answer {
    status: StatusCode,
    grpc_status: Option<String>,
    body: Bytes,
}

/// POSTs a valid length-prefixed `HelloRequest` to `SayHello` with this `content-type`.
async fn say_hello(server: &TestServer, content_type: Option<&str>) -> Answer {
    let stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("http/2 handshake");
    tokio::spawn(connection);

    let message = HelloRequest {
        name: "plain".into(),
    }
    .encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    let mut request = http::Request::post(format!(
        "http://{}/helloworld.Greeter/SayHello",
        server.addr
    ))
    .header("te", "trailers");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request
        .body(Full::new(Bytes::from(frame)))
        .expect("valid request");
    let response = within("the response", sender.send_request(request))
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    let collected = within("the body", body.collect()).await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let grpc_status = parts
        .headers
        .get("grpc-status")
        .or_else(|| trailers.get("grpc-status"))
        .map(|value| value.to_str().expect("ascii").to_owned());
    Answer {
        status: parts.status,
        grpc_status,
        body: collected.to_bytes(),
    }
}

#[tokio::test]
async fn text_plain_gets_415() {
    let server = TestServer::start(GrpcServer::new()).await;
    let answer = say_hello(&server, Some("text/plain")).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.grpc_status.as_deref(), Some("3"));
    assert!(
        answer.body.is_empty(),
        "no reply may be sent: {:?}",
        answer.body
    );
}

#[tokio::test]
async fn missing_content_type_gets_415() {
    let server = TestServer::start(GrpcServer::new()).await;
    let answer = say_hello(&server, None).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.body.is_empty());
}

#[tokio::test]
async fn grpc_content_types_are_served() {
    let server = TestServer::start(GrpcServer::new()).await;
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let answer = say_hello(&server, Some(content_type)).await;
        assert_eq!(answer.status, StatusCode::OK, "{content_type}");
        assert_eq!(answer.grpc_status.as_deref(), Some("0"), "{content_type}");
        // The reply: a 5-byte prefix, then the HelloReply.
        let reply = wsgrpc::grpc::pb::HelloReply::decode(&answer.body[5..]).expect("a HelloReply");
        assert_eq!(reply.message, "Hello plain");
    }
}
