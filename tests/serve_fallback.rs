//! The one-port `App` at home in tower: an axum `Router` and tower-http's `ServeDir` as the
//! fallback beside WebSocket and gRPC on one port, and tower-http layers around all of it.

#![cfg(feature = "serve")]

mod common;
#[path = "common/h2.rs"]
mod h2_common;
#[path = "common/serve.rs"]
mod serve_common;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use serve_common::{TestApp, WAIT, http1, http2};
use tonic::transport::Endpoint;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use wsgrpc::grpc::GrpcServer;
use wsgrpc::grpc::pb::{HelloRequest, greeter_client::GreeterClient};
use wsgrpc::serve::{App, Assets};
use wsgrpc::ws::{Handler, Message, Router, SessionHandle, handler_fn};

fn echo() -> impl Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

/// REST routes of an axum app: a list, an item by id, and a POST that echoes its body.
fn rest() -> axum::Router {
    use axum::extract::Path;
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/items", get(|| async { "apple,pear" }))
        .route(
            "/api/items/{id}",
            get(|Path(id): Path<u32>| async move { format!("item {id}") }),
        )
        .route("/api/echo", post(|body: Bytes| async move { body }))
}

fn get(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

async fn say_hello(addr: SocketAddr) -> tonic::Response<wsgrpc::grpc::pb::HelloReply> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("h2 connect");
    tokio::time::timeout(
        WAIT,
        GreeterClient::new(channel).say_hello(HelloRequest {
            name: "rest".into(),
        }),
    )
    .await
    .expect("call in time")
    .expect("SayHello")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_router_answers_rest_beside_websocket_and_grpc() {
    let app = App::new()
        .websocket(Router::new().route("/ws", echo()))
        .grpc(GrpcServer::new().into_parts().await.expect("grpc parts"))
        .fallback(rest());
    let mut app = TestApp::start(app).await;
    let addr = app.addr;

    let response = http1(addr, get(addr, "/api/items")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body().as_ref(), b"apple,pear");
    // Path captures work: the request reaches axum whole.
    let response = http2(addr, get(addr, "/api/items/42")).await;
    assert_eq!(response.body().as_ref(), b"item 42");
    let post = Request::post("/api/echo")
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::from_static(b"request body")))
        .expect("valid");
    let response = http1(addr, post).await;
    assert_eq!(response.body().as_ref(), b"request body");
    // axum's own 404 for what it has no route for.
    assert_eq!(
        http1(addr, get(addr, "/api/nothing")).await.status(),
        StatusCode::NOT_FOUND
    );

    // The same port still speaks WebSocket and gRPC.
    let mut client = common::connect(&format!("ws://{addr}/ws")).await;
    common::round_trip(&mut client, "beside rest").await;
    assert_eq!(say_hello(addr).await.into_inner().message, "Hello rest");

    app.signal_shutdown();
    assert_eq!(
        u16::from(common::expect_close(&mut client).await.code),
        1001
    );
    app.stopped().await.expect("clean shutdown");
}

#[tokio::test]
async fn serve_dir_serves_files_after_the_assets() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve_fallback_files");
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("hello.txt"), "hello from disk\n").expect("write file");
    std::fs::write(dir.join("index.html"), "<p>disk index</p>").expect("write file");

    let app = App::new()
        .assets(Assets::new().file("/", "text/html", "<p>in memory</p>"))
        .fallback(ServeDir::new(&dir));
    let app = TestApp::start(app).await;
    let addr = app.addr;

    let response = http1(addr, get(addr, "/hello.txt")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body().as_ref(), b"hello from disk\n");
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain"),
        "{:?}",
        response.headers()
    );
    // An exact asset path wins over the directory (which has an index.html for `/`).
    let response = http1(addr, get(addr, "/")).await;
    assert_eq!(response.body().as_ref(), b"<p>in memory</p>");
    // ServeDir's own 404.
    assert_eq!(
        http1(addr, get(addr, "/missing.txt")).await.status(),
        StatusCode::NOT_FOUND
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_wrap_rest_grpc_and_websocket_upgrades() {
    let app = App::new()
        .websocket(Router::new().route("/ws", echo()))
        .grpc(GrpcServer::new().into_parts().await.expect("grpc parts"))
        .fallback(rest())
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("x-served-by"),
            HeaderValue::from_static("inner"),
        ))
        // Added last, so it runs last on the way out and its value wins.
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("x-served-by"),
            HeaderValue::from_static("outer"),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let app = TestApp::start(app).await;
    let addr = app.addr;

    // The fallback's responses.
    let response = http1(addr, get(addr, "/api/items")).await;
    assert_eq!(response.headers()["x-served-by"], "outer");
    assert_eq!(response.body().as_ref(), b"apple,pear");
    // The 404 of nothing at all (no fallback route).
    let response = http1(addr, get(addr, "/api/none")).await;
    assert_eq!(response.headers()["x-served-by"], "outer");

    // gRPC responses: the header reaches the client as response metadata.
    let reply = say_hello(addr).await;
    assert_eq!(
        reply.metadata().get("x-served-by").expect("header"),
        "outer"
    );

    // The WebSocket upgrade's 101, and the connection works on after it.
    let (mut client, response) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("upgrade in time")
    .expect("upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["x-served-by"], "outer");
    common::round_trip(&mut client, "through the layers").await;

    // The HTTP/2 extended CONNECT's 200 too.
    let mut h2 = h2_common::H2Connection::open(addr).await;
    let response = h2
        .connect("/ws", Some("websocket"), &[("sec-websocket-version", "13")])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-served-by"], "outer");
    let mut socket = h2.websocket("/ws").await;
    h2_common::round_trip(&mut socket, "over h2 through the layers").await;
}

#[tokio::test]
async fn without_grpc_services_grpc_requests_reach_the_fallback() {
    let router = axum::Router::new().route(
        "/helloworld.Greeter/SayHello",
        axum::routing::post(|| async { "a tonic router could answer here" }),
    );
    let app = TestApp::start(App::new().fallback(router)).await;
    let addr = app.addr;
    let request = Request::post("/helloworld.Greeter/SayHello")
        .header(header::HOST, addr.to_string())
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let response = http2(addr, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.body().as_ref(),
        b"a tonic router could answer here"
    );
}

#[tokio::test]
async fn without_a_websocket_handler_upgrades_reach_the_fallback() {
    let router = axum::Router::new().route(
        "/ws",
        axum::routing::get(|| async { "the fallback's own websocket route" }),
    );
    let app = TestApp::start(App::new().fallback(router)).await;
    let addr = app.addr;
    let request = Request::get("/ws")
        .header(header::HOST, addr.to_string())
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let response = http1(addr, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.body().as_ref(),
        b"the fallback's own websocket route"
    );
}
