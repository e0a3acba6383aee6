//! The server around the connections: graceful shutdown, connection limits, refusals before the
//! upgrade, and no leaked connection tasks.

#![cfg(feature = "ws")]

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use wsgrpc::ws::{ClosedBy, Config, Handler, Rejection, Server, Upgrade};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_sends_1001_to_every_client_and_returns() {
    let (probe, mut closes) = Probe::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound address");
    let server = Server::new(probe);
    let connections = server.connections();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));

    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut client = connect(&format!("ws://{addr}/ws")).await;
        round_trip(&mut client, "up").await;
        clients.push(client);
    }
    assert_eq!(connections.count(), 20);
    stop.send(()).expect("server waiting for the signal");

    for client in &mut clients {
        let frame = expect_close(client).await;
        assert_eq!(frame.code, WsCloseCode::Away);
        assert_eq!(frame.reason.as_str(), "server shutting down");
    }
    for _ in 0..20 {
        let reason = next_close(&mut closes).await;
        assert_eq!(reason.code_number(), 1001);
        assert_eq!(reason.closed_by, ClosedBy::Local);
    }
    tokio::time::timeout(WAIT, serving)
        .await
        .expect("serve returns after shutdown")
        .expect("task")
        .expect("clean shutdown");
    assert_eq!(connections.count(), 0);
    // The listener is closed: new connections are refused by the OS.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_does_not_wait_past_its_timeout_for_unresponsive_clients() {
    let config = Config::default().shutdown_timeout(Duration::from_millis(300));
    let server = start(Probe::new().0, config).await;
    // A raw client that never answers the close frame.
    let _silent = raw_connect(server.addr, "/ws").await;
    server.wait_connections(1).await;
    server.handle.shutdown();
    tokio::time::timeout(WAIT, server.task)
        .await
        .expect("serve returns")
        .expect("task")
        .expect("ok");
    assert_eq!(server.handle.connections(), 0);
}

#[tokio::test]
async fn connections_over_the_limit_get_503_and_capacity_comes_back() {
    let server = start(Probe::new().0, Config::default().max_connections(2)).await;
    let mut first = connect(&server.url("/ws")).await;
    let mut second = connect(&server.url("/ws")).await;
    round_trip(&mut first, "one").await;
    round_trip(&mut second, "two").await;

    match tokio_tungstenite::connect_async(server.url("/ws")).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()["retry-after"], "1");
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }

    first.close(None).await.expect("close");
    expect_close_ack(&mut first).await;
    server.wait_connections(1).await;
    let mut third = connect(&server.url("/ws")).await;
    round_trip(&mut third, "three").await;
    round_trip(&mut second, "two again").await;
}

/// Reads until the server ends a connection the client closed.
async fn expect_close_ack(client: &mut Client) {
    tokio::time::timeout(WAIT, async {
        while futures::StreamExt::next(client).await.is_some() {}
    })
    .await
    .expect("server completes the close handshake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_connection_count_returns_to_zero() {
    let server = start(Probe::new().0, Config::default()).await;
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut client = connect(&server.url("/ws")).await;
        round_trip(&mut client, &format!("#{i}")).await;
        clients.push(client);
    }
    server.wait_connections(50).await;
    // Half close politely, half just vanish.
    for (i, mut client) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            client.close(None).await.expect("close");
            expect_close_ack(&mut client).await;
        }
    }
    server.wait_connections(0).await;
}

#[tokio::test]
async fn plain_http_gets_426_not_a_dropped_socket() {
    let server = start(Probe::new().0, Config::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let head = read_http_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
}

#[tokio::test]
async fn garbage_and_oversize_heads_get_400_and_431() {
    let config = Config::default().max_request_head_size(1024);
    let server = start(Probe::new().0, config).await;

    let mut garbage = TcpStream::connect(server.addr).await.expect("connect");
    garbage
        .write_all(b"\x00\x01\x02 nonsense\r\n\r\n")
        .await
        .expect("write");
    assert!(
        read_http_head(&mut garbage)
            .await
            .starts_with("HTTP/1.1 400")
    );

    let mut huge = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!("GET /ws HTTP/1.1\r\nX-Filler: {}\r\n\r\n", "x".repeat(4000));
    // The server may answer before reading everything; a failed write is fine.
    let _ = huge.write_all(head.as_bytes()).await;
    assert!(read_http_head(&mut huge).await.starts_with("HTTP/1.1 431"));
}

#[tokio::test]
async fn handshake_timeout_closes_silent_sockets() {
    let config = Config::default().handshake_timeout(Duration::from_millis(200));
    let server = start(Probe::new().0, config).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    silent
        .write_all(b"GET /ws HTTP/1.1\r\n")
        .await
        .expect("half a request");
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(WAIT, silent.read(&mut buffer))
        .await
        .expect("server closes in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected the socket closed, got {read:?}"
    );
    server.wait_connections(0).await;
}

#[tokio::test]
async fn on_upgrade_can_refuse_with_a_status_and_body() {
    struct OnlyWs;
    impl Handler for OnlyWs {
        async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
            match upgrade.path() {
                "/ws" => Ok(()),
                _ => Err(Rejection::new(StatusCode::NOT_FOUND, "no such endpoint\n")),
            }
        }
    }
    let server = start(OnlyWs, Config::default()).await;
    match tokio_tungstenite::connect_async(server.url("/elsewhere")).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            assert_eq!(response.body().as_deref(), Some(&b"no such endpoint\n"[..]));
        }
        other => panic!("expected HTTP 404, got {other:?}"),
    }
    connect(&server.url("/ws")).await;
}
