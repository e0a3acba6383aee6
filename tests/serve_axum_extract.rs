//! The axum adapter in axum's style and on HTTP/2: the `WebSocketUpgrade` extractor upgrading
//! and echoing, WebSocket over HTTP/2 (RFC 8441) through `axum::serve` for the route adapter and
//! the extractor, and gRPC-Web through `grpc_web_router`.

#![cfg(feature = "axum")]

mod common;
#[path = "common/h2.rs"]
mod h2_common;
#[path = "common/serve.rs"]
mod serve_common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::response::Response;
use http::{StatusCode, header};
use serve_common::{WAIT, grpc_web_hello, http1, parse_grpc_web};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsgrpc::grpc::GrpcServer;
use wsgrpc::serve::axum::{WebSocket, WebSocketUpgrade};
use wsgrpc::ws::{Config, Connections, Handler, Message, Session};

/// Echoes, after first telling the client which HTTP its WebSocket runs over.
struct VersionEcho;

impl Handler for VersionEcho {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        let version = format!("{:?}", session.http_version());
        session.send(Message::text(version)).await
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        session.send(message).await
    }
}

/// An axum handler written as with axum's own extractor.
async fn extracted(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(VersionEcho).await
}

/// `axum::serve` on 127.0.0.1:0; the stop switch closes the WebSockets of `connections` too.
struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn serve(app: axum::Router, connections: Connections) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
            connections.shutdown(Duration::from_secs(5)).await;
        })
        .into_future(),
    );
    Served {
        addr,
        stop: Some(stop),
        task,
    }
}

impl Served {
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops in time")
            .expect("no panic")
            .expect("clean stop");
    }
}

fn app(connections: &Connections) -> axum::Router {
    let route = WebSocket::new(VersionEcho)
        .with_connections(connections.clone())
        .into_route();
    axum::Router::new()
        .route("/extracted", axum::routing::any(extracted))
        .route("/route", route)
        .layer(Extension(connections.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_upgrades_and_echoes_over_http1_and_http2() {
    let connections = Connections::new();
    let served = serve(app(&connections), connections.clone()).await;
    let addr = served.addr;

    let mut http1_client = common::connect(&format!("ws://{addr}/extracted")).await;
    assert_eq!(common::next_text(&mut http1_client).await, "HTTP/1.1");
    common::round_trip(&mut http1_client, "extracted").await;

    let mut h2 = h2_common::H2Connection::open(addr).await;
    let mut extracted = h2.websocket("/extracted").await;
    assert_eq!(h2_common::next_text(&mut extracted).await, "HTTP/2.0");
    h2_common::round_trip(&mut extracted, "extracted over h2").await;
    // The route adapter takes extended CONNECT too (the issue saw 405 here before).
    let mut routed = h2.websocket("/route").await;
    assert_eq!(h2_common::next_text(&mut routed).await, "HTTP/2.0");
    h2_common::round_trip(&mut routed, "routed over h2").await;
    assert_eq!(connections.count(), 3);

    // Refusals of the one upgrade path: an unknown :protocol, a missing version.
    let (status, _) = h2_common::refusal(
        h2.connect(
            "/extracted",
            Some("webtransport"),
            &[("sec-websocket-version", "13")],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    let (status, _) = h2_common::refusal(h2.connect("/route", Some("websocket"), &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Shutdown through the shared connection set: 1001 on both HTTP versions.
    let stopping = tokio::spawn(served.stop());
    assert_eq!(
        u16::from(common::expect_close(&mut http1_client).await.code),
        1001
    );
    assert_eq!(
        u16::from(h2_common::expect_close(&mut extracted).await.code),
        1001
    );
    assert_eq!(
        u16::from(h2_common::expect_close(&mut routed).await.code),
        1001
    );
    stopping.await.expect("stopped");
}

#[tokio::test]
async fn extractor_applies_config_and_refuses_without_connections() {
    let connections = Connections::new();
    // A config from an extension: at most one connection.
    let app = axum::Router::new()
        .route("/extracted", axum::routing::any(extracted))
        .layer(Extension(Config::default().max_connections(1)))
        .layer(Extension(connections.clone()));
    let served = serve(app, connections.clone()).await;
    let addr = served.addr;
    let mut first = common::connect(&format!("ws://{addr}/extracted")).await;
    assert_eq!(common::next_text(&mut first).await, "HTTP/1.1");
    match tokio_tungstenite::connect_async(format!("ws://{addr}/extracted")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE)
        }
        other => panic!("expected 503 at max_connections, got {other:?}"),
    }
    // A plain GET is refused by the upgrade validation (426), as on every path.
    let request = http::Request::get("/extracted")
        .header(header::HOST, addr.to_string())
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("valid");
    assert_eq!(
        http1(addr, request).await.status(),
        StatusCode::UPGRADE_REQUIRED
    );
    let stopping = tokio::spawn(served.stop());
    assert_eq!(u16::from(common::expect_close(&mut first).await.code), 1001);
    stopping.await.expect("stopped");

    // Without the `Extension(Connections)` layer: 500, and nothing is upgraded.
    let app = axum::Router::new().route("/extracted", axum::routing::any(extracted));
    let served = serve(app, Connections::new()).await;
    match tokio_tungstenite::connect_async(format!("ws://{}/extracted", served.addr)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR)
        }
        other => panic!("expected 500 without the connection set, got {other:?}"),
    }
    served.stop().await;
}

#[cfg(feature = "grpc-web")]
#[tokio::test]
async fn grpc_web_through_the_axum_adapter() {
    use wsgrpc::serve::axum::grpc_web_router;
    let parts = GrpcServer::new().into_parts().await.expect("grpc parts");
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "page" }))
        .merge(grpc_web_router(parts));
    let served = serve(app, Connections::new()).await;
    let addr = served.addr;

    // What a browser page sends: HTTP/1.1, application/grpc-web+proto framing.
    let response = http1(addr, grpc_web_hello(addr, "axum browser", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/grpc-web+proto"
    );
    let (message, trailers) = parse_grpc_web(response.body());
    assert_eq!(message.as_deref(), Some("Hello axum browser"));
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");

    // Native gRPC still passes through the same router.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let reply = wsgrpc::grpc::pb::greeter_client::GreeterClient::new(channel)
        .say_hello(wsgrpc::grpc::pb::HelloRequest {
            name: "native".into(),
        })
        .await
        .expect("SayHello");
    assert_eq!(reply.into_inner().message, "Hello native");
    served.stop().await;
}
