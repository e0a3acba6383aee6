//! Idle timeout and keepalive over real sockets, with short intervals so the tests stay quick.

#![cfg(feature = "ws")]

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use wsgrpc::ws::{CloseCode, Config};

#[tokio::test]
async fn idle_connection_is_closed_with_1001() {
    let (probe, mut closes) = Probe::new();
    let config = Config::default()
        .idle_timeout(Some(Duration::from_millis(300)))
        .ping_interval(None);
    let server = start(probe, config).await;
    let mut client = connect(&server.url("/ws")).await;
    let started = tokio::time::Instant::now();
    round_trip(&mut client, "activity").await;
    let frame = expect_close(&mut client).await;
    assert_eq!(frame.code, WsCloseCode::Away);
    assert_eq!(frame.reason.as_str(), "idle timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed early: {:?}",
        started.elapsed()
    );
    assert_eq!(next_close(&mut closes).await.code, CloseCode::Away);
}

#[tokio::test]
async fn traffic_keeps_an_idle_timeout_from_firing() {
    let config = Config::default()
        .idle_timeout(Some(Duration::from_millis(400)))
        .ping_interval(None);
    let server = start(Probe::new().0, config).await;
    let mut client = connect(&server.url("/ws")).await;
    let started = tokio::time::Instant::now();
    let mut rounds = 0;
    // One message every 50 ms for twice the timeout: the pacing is the point of the test, not a
    // stand-in for waiting on an event.
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    while started.elapsed() < Duration::from_millis(800) {
        pace.tick().await;
        round_trip(&mut client, "still busy").await;
        rounds += 1;
    }
    assert!(rounds > 5);
    round_trip(&mut client, "survived").await;
}

#[tokio::test]
async fn quiet_connection_gets_keepalive_pings() {
    let config = Config::default().ping_interval(Some(Duration::from_millis(100)));
    let server = start(Probe::new().0, config).await;
    let mut client = connect(&server.url("/ws")).await;
    let mut pings = 0;
    while pings < 3 {
        match tokio::time::timeout(WAIT, client.next())
            .await
            .expect("ping in time")
        {
            Some(Ok(WsMessage::Ping(_))) => pings += 1,
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    // The client answered each ping (tungstenite does so while reading): still connected.
    round_trip(&mut client, "alive").await;
}

#[tokio::test]
async fn peer_that_never_answers_pings_is_dropped() {
    let (probe, mut closes) = Probe::new();
    let config = Config::default().ping_interval(Some(Duration::from_millis(100)));
    let server = start(probe, config).await;
    // A raw client that reads nothing and answers nothing.
    let mut stream = raw_connect(server.addr, "/ws").await;
    let reason = next_close(&mut closes).await;
    assert_eq!(reason.code, CloseCode::Abnormal);
    assert_eq!(reason.reason.as_str(), "keepalive timeout");
    // It got a ping before being dropped, then the socket was closed.
    let frame = read_raw_frame(&mut stream).await.expect("a ping");
    assert_eq!(frame.opcode, 0x9);
    expect_eof(&mut stream).await;
    server.wait_connections(0).await;
}
