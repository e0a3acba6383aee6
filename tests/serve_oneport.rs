//! One port for everything: a tonic client, a WebSocket client, an HTTP/1.1 gRPC-Web request and
//! a page request against the same listener at the same time; the limits of both sides on that
//! path; CORS for gRPC-Web.

#![cfg(feature = "grpc-web")]

mod common;
#[path = "common/serve.rs"]
mod serve_common;

use std::time::Duration;

use bytes::Bytes;
use common::{connect, round_trip};
use http::{Request, StatusCode, header};
use http_body_util::Full;
use serve_common::{TestApp, WAIT, grpc_web_hello, http1, http2, parse_grpc_web};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Endpoint;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wsgrpc::grpc::pb::{HelloRequest, greeter_client::GreeterClient};
use wsgrpc::grpc::{Config as GrpcConfig, GrpcServer};
use wsgrpc::serve::{App, Assets, Cors};
use wsgrpc::ws::{Config as WsConfig, Handler, Message, Router, SessionHandle, handler_fn};

fn echo() -> impl Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

async fn full_app() -> App<impl Handler> {
    App::new()
        .websocket(Router::new().route("/ws", echo()))
        .grpc(GrpcServer::new().into_parts().await.expect("grpc parts"))
        .grpc_web(Cors::default())
        .assets(Assets::new().file("/", "text/html; charset=utf-8", "<!doctype html>hi"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_on_one_port_at_the_same_time() {
    let mut app = TestApp::start(full_app().await).await;
    let addr = app.addr;

    let grpc = async {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("h2 connect");
        let reply = GreeterClient::new(channel.clone())
            .say_hello(HelloRequest {
                name: "tonic".into(),
            })
            .await
            .expect("SayHello");
        assert_eq!(reply.into_inner().message, "Hello tonic");
        // Health and reflection are there too.
        let health = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await;
        assert!(health.is_ok(), "{health:?}");
    };
    let websocket = async {
        let mut client = connect(&format!("ws://{addr}/ws")).await;
        round_trip(&mut client, "over websocket").await;
        client
    };
    let grpc_web = async {
        let response = http1(addr, grpc_web_hello(addr, "browser", None)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/grpc-web+proto"
        );
        let (message, trailers) = parse_grpc_web(response.body());
        assert_eq!(message.as_deref(), Some("Hello browser"));
        assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    };
    let page = async {
        let request = Request::get("/")
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .expect("valid");
        let response = http1(addr, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"<!doctype html>hi");
    };
    let ((), mut client, (), ()) = tokio::time::timeout(WAIT, async {
        tokio::join!(grpc, websocket, grpc_web, page)
    })
    .await
    .expect("all four in time");

    // The WebSocket is still open while the others finished.
    round_trip(&mut client, "still here").await;
    app.signal_shutdown();
    assert_eq!(
        u16::from(common::expect_close(&mut client).await.code),
        1001
    );
    app.stopped().await.expect("clean shutdown");
}

#[tokio::test]
async fn unknown_websocket_paths_and_pages_get_404() {
    let app = TestApp::start(full_app().await).await;
    let addr = app.addr;
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/nope")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::NOT_FOUND)
        }
        other => panic!("expected 404, got {other:?}"),
    }
    let request = Request::get("/missing.js")
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("valid");
    assert_eq!(http1(addr, request).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn websocket_connection_limit_answers_503() {
    let app = TestApp::start(
        full_app()
            .await
            .websocket_config(WsConfig::default().max_connections(1)),
    )
    .await;
    let addr = app.addr;
    let mut first = connect(&format!("ws://{addr}/ws")).await;
    app.wait_websockets(1).await;
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key(header::RETRY_AFTER));
        }
        other => panic!("expected 503, got {other:?}"),
    }
    round_trip(&mut first, "the first one is unaffected").await;
}

#[tokio::test]
async fn websocket_message_limit_applies() {
    let app = TestApp::start(
        full_app()
            .await
            .websocket_config(WsConfig::default().max_message_size(16)),
    )
    .await;
    let mut client = connect(&format!("ws://{}/ws", app.addr)).await;
    use futures::SinkExt;
    client
        .send(tokio_tungstenite::tungstenite::Message::text(
            "x".repeat(64),
        ))
        .await
        .expect("send");
    let frame = common::expect_close(&mut client).await;
    assert_eq!(u16::from(frame.code), 1009);
}

#[tokio::test]
async fn silent_and_slow_clients_are_disconnected() {
    let app = TestApp::start(
        full_app()
            .await
            .request_head_timeout(Duration::from_millis(300)),
    )
    .await;

    // Says nothing at all: dropped after the request head timeout.
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(WAIT, silent.read(&mut buffer))
        .await
        .expect("the server hangs up in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Trickles a request head and never finishes it (slowloris).
    let mut slow = TcpStream::connect(app.addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let answer = tokio::time::timeout(WAIT, async {
        let mut seen = Vec::new();
        loop {
            match slow.read(&mut buffer).await {
                Ok(0) | Err(_) => return seen,
                Ok(read) => seen.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await
    .expect("the server hangs up in time");
    // hyper answers 408 or just closes; either way no request was served.
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test]
async fn grpc_limits_apply_on_the_shared_port() {
    let parts = GrpcServer::new()
        .config(GrpcConfig::default().max_decoding_message_size(64))
        .bearer_token("s3cret")
        .into_parts()
        .await
        .expect("parts");
    let app = TestApp::start(App::new().grpc(parts).grpc_web(Cors::default())).await;
    let addr = app.addr;
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = GreeterClient::new(channel);
    // Auth from the GrpcLayer:
    let status = client
        .say_hello(HelloRequest { name: "x".into() })
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    // Message limit from the routes, over gRPC-Web too:
    let mut request = grpc_web_hello(addr, &"y".repeat(100), None);
    request
        .headers_mut()
        .insert("authorization", "Bearer s3cret".parse().expect("valid"));
    let response = http1(addr, request).await;
    let status = response
        .headers()
        .get("grpc-status")
        .map(|value| value.to_str().expect("ascii").to_owned())
        .or_else(|| {
            let (_, trailers) = parse_grpc_web(response.body());
            trailers
                .lines()
                .find_map(|line| line.strip_prefix("grpc-status:").map(str::to_owned))
        });
    assert_eq!(
        status.as_deref(),
        Some("11"),
        "OUT_OF_RANGE expected: {response:?}"
    );
}

#[tokio::test]
async fn grpc_web_cors_is_same_origin_unless_configured() {
    let app = TestApp::start(full_app().await).await;
    let addr = app.addr;
    let same = http1(
        addr,
        grpc_web_hello(addr, "same", Some(&format!("http://{addr}"))),
    )
    .await;
    assert_eq!(same.status(), StatusCode::OK);
    let cross = http1(
        addr,
        grpc_web_hello(addr, "cross", Some("https://elsewhere.example")),
    )
    .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    let parts = GrpcServer::new().into_parts().await.expect("parts");
    let open = TestApp::start(
        App::new()
            .grpc(parts)
            .grpc_web(Cors::allow_origins(["https://app.example"])),
    )
    .await;
    let addr = open.addr;
    let preflight = Request::options("/helloworld.Greeter/SayHello")
        .header("host", addr.to_string())
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        // Issue 13's preflight: custom metadata beside grpc-web's own headers.
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,x-request-id,x-tenant",
        )
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let answer = http1(addr, preflight).await;
    // tower-http's CorsLayer answers preflights 200 (204 is as valid; browsers accept any 2xx).
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(
        answer.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    let allowed = answer.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .expect("ascii");
    for requested in ["x-grpc-web", "x-user-agent", "x-request-id", "x-tenant"] {
        assert!(
            allowed.contains(requested),
            "{requested} not allowed: {allowed}"
        );
    }
    let call = http1(
        addr,
        grpc_web_hello(addr, "app", Some("https://app.example")),
    )
    .await;
    assert_eq!(call.status(), StatusCode::OK);
    assert!(
        call.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .expect("ascii")
            .contains("grpc-status")
    );
    assert_eq!(parse_grpc_web(call.body()).0.as_deref(), Some("Hello app"));
}

#[tokio::test]
async fn grpc_web_over_http2_too() {
    let app = TestApp::start(full_app().await).await;
    let addr = app.addr;
    let mut request = grpc_web_hello(addr, "h2", None);
    *request.uri_mut() = format!("http://{addr}/helloworld.Greeter/SayHello")
        .parse()
        .expect("uri");
    request.headers_mut().remove(header::HOST);
    let response = http2(addr, request).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        parse_grpc_web(response.body()).0.as_deref(),
        Some("Hello h2")
    );
}
