//! WebSocket over HTTP/2 (RFC 8441) on the one-port `App`: hyper's HTTP/2 client opens extended
//! CONNECT streams and speaks WebSocket frames over them with tokio-tungstenite; the same
//! handler, router, limits and graceful shutdown as an HTTP/1.1 upgrade, and the session says
//! which one it was.

#![cfg(feature = "serve")]

mod common;
#[path = "common/h2.rs"]
mod h2_common;
#[path = "common/serve.rs"]
mod serve_common;
#[cfg(feature = "tls")]
#[path = "common/tls.rs"]
mod tls_common;

use futures::{SinkExt, StreamExt};
use h2_common::{H2Connection, expect_close, next_text, refusal, round_trip};
use http::StatusCode;
use serve_common::TestApp;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::serve::App;
use wsgrpc::ws::{Config, Handler, Message, Router, Session};

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

fn app(config: Config) -> App<impl Handler> {
    App::new()
        .websocket(Router::new().route("/ws", VersionEcho))
        .websocket_config(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_share_an_http2_connection_and_http1_still_works() {
    let mut app = TestApp::start(app(Config::default())).await;
    let mut h2 = H2Connection::open(app.addr).await;
    // Two WebSockets on two streams of one HTTP/2 connection.
    let mut first = h2.websocket("/ws").await;
    let mut second = h2.websocket("/ws").await;
    assert_eq!(next_text(&mut first).await, "HTTP/2.0");
    assert_eq!(next_text(&mut second).await, "HTTP/2.0");
    round_trip(&mut first, "one").await;
    round_trip(&mut second, "two").await;
    app.wait_websockets(2).await;

    // A plain ws:// client (what browsers do without TLS) still upgrades over HTTP/1.1.
    let mut http1 = common::connect(&format!("ws://{}/ws", app.addr)).await;
    match common::next_data(&mut http1).await {
        tokio_tungstenite::tungstenite::Message::Text(text) => {
            assert_eq!(text.as_str(), "HTTP/1.1")
        }
        other => panic!("expected the version, got {other:?}"),
    }
    common::round_trip(&mut http1, "old school").await;
    app.wait_websockets(3).await;

    // Graceful shutdown closes the HTTP/2 WebSockets with 1001 like the HTTP/1.1 one.
    app.signal_shutdown();
    assert_eq!(u16::from(expect_close(&mut first).await.code), 1001);
    assert_eq!(u16::from(expect_close(&mut second).await.code), 1001);
    assert_eq!(u16::from(common::expect_close(&mut http1).await.code), 1001);
    app.stopped().await.expect("clean shutdown");
}

#[tokio::test]
async fn extended_connect_refusals() {
    let app = TestApp::start(app(Config::default())).await;
    let mut h2 = H2Connection::open(app.addr).await;
    let version = [("sec-websocket-version", "13")];

    // RFC 9220 section 3 (RFC 8441's semantics): an unknown `:protocol` gets 501.
    let (status, _) = refusal(h2.connect("/ws", Some("webtransport"), &version).await).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);

    // RFC 6455 4.2.2 item 4 through RFC 8441 section 5: a missing or other version gets 400
    // naming the version served (426 would need an `Upgrade` header, forbidden on HTTP/2).
    for headers in [&[][..], &[("sec-websocket-version", "8")][..]] {
        let response = h2.connect("/ws", Some("websocket"), headers).await;
        assert_eq!(response.headers()["sec-websocket-version"], "13");
        let (status, _) = refusal(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}");
    }

    // The router's refusal, as on HTTP/1.1.
    let (status, _) = refusal(h2.connect("/elsewhere", Some("websocket"), &version).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The origin policy, as on HTTP/1.1: same origin by default.
    let cross_origin = [
        ("sec-websocket-version", "13"),
        ("origin", "https://evil.example"),
    ];
    let (status, _) = refusal(h2.connect("/ws", Some("websocket"), &cross_origin).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A plain CONNECT (no `:protocol`) is no WebSocket request: plain HTTP, here 404.
    let (status, _) = refusal(h2.connect("/ws", None, &[]).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The connection survived every refusal: a WebSocket still opens on it.
    let mut socket = h2.websocket("/ws").await;
    assert_eq!(next_text(&mut socket).await, "HTTP/2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_flow_and_the_message_limit_holds() {
    let config = Config::default().max_message_size(4 << 20);
    let app = TestApp::start(app(config)).await;
    let mut h2 = H2Connection::open(app.addr).await;
    let mut socket = h2.websocket("/ws").await;
    assert_eq!(next_text(&mut socket).await, "HTTP/2.0");
    // 3 MiB each way: far past HTTP/2's initial 64 KiB flow-control window, so the stream's
    // window must be released as the engine reads.
    let payload: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    socket
        .send(WsMessage::binary(payload.clone()))
        .await
        .expect("send");
    let echoed = tokio::time::timeout(h2_common::WAIT, socket.next())
        .await
        .expect("echo in time")
        .expect("stream open")
        .expect("valid message");
    assert_eq!(echoed.into_data().as_ref(), payload.as_slice());

    // Over `max_message_size`: 1009, as on HTTP/1.1.
    socket
        .send(WsMessage::binary(vec![0u8; (4 << 20) + 1]))
        .await
        .expect("send");
    assert_eq!(u16::from(expect_close(&mut socket).await.code), 1009);
}

#[tokio::test]
async fn max_connections_counts_http2_websockets() {
    let app = TestApp::start(app(Config::default().max_connections(1))).await;
    let mut h2 = H2Connection::open(app.addr).await;
    let mut socket = h2.websocket("/ws").await;
    assert_eq!(next_text(&mut socket).await, "HTTP/2.0");
    app.wait_websockets(1).await;
    let response = h2
        .connect("/ws", Some("websocket"), &[("sec-websocket-version", "13")])
        .await;
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, _) = refusal(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // Closing the first WebSocket frees the slot.
    socket.close(None).await.expect("close");
    while socket.next().await.is_some() {}
    app.wait_websockets(0).await;
    let mut again = h2.websocket("/ws").await;
    assert_eq!(next_text(&mut again).await, "HTTP/2.0");
}

/// The browser's path to an HTTP/2 WebSocket: `https://` with ALPN `h2`, then extended CONNECT.
#[cfg(feature = "tls")]
#[tokio::test]
async fn websocket_over_http2_over_tls() {
    let certificate = tls_common::TestCertificate::localhost();
    let app = TestApp::start(app(Config::default()).tls(certificate.server_config())).await;
    let mut client_config = (*certificate.client_config()).clone();
    client_config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let server_name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio::time::timeout(
        h2_common::WAIT,
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config))
            .connect(server_name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("tls handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let base = format!("https://localhost:{}", app.addr.port());
    let mut h2 = H2Connection::over(tls, base).await;
    let mut socket = h2.websocket("/ws").await;
    assert_eq!(next_text(&mut socket).await, "HTTP/2.0");
    round_trip(&mut socket, "wss over h2").await;
}
