//! The ready layers over real sockets: tracing, rate limits (each excess policy), per-message
//! timeouts, and stacking them in either order.

#![cfg(feature = "rate-limit")]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::ws::layer::{Excess, RateLimitLayer, TimeoutLayer, TraceLayer};
use wsgrpc::ws::{Config, Handler, HandlerBuilder, Layer, Message, Session};

/// A `MakeWriter` collecting formatted log lines for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

// Current-thread runtime: the subscriber set for this thread sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn trace_layer_records_a_span_per_connection_with_counts_and_close_code() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (probe, _closes) = Probe::new();
    let handler = HandlerBuilder::new()
        .layer(TraceLayer::new())
        .handler(probe);
    let server = start(handler, Config::default()).await;
    let mut client = connect(&server.url("/traced?x=1")).await;
    for text in ["one", "two", "three"] {
        round_trip(&mut client, text).await;
    }
    client
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        }))
        .await
        .expect("close");
    server.wait_connections(0).await;

    let text = logs.text();
    let opened = text
        .lines()
        .find(|line| line.contains("websocket connection opened"))
        .unwrap_or_else(|| panic!("no open event in:\n{text}"));
    assert!(opened.contains("ws{id="), "{opened}");
    assert!(opened.contains("peer=127.0.0.1:"), "{opened}");
    assert!(opened.contains("path=/traced"), "{opened}");
    let closed = text
        .lines()
        .find(|line| line.contains("websocket connection closed"))
        .unwrap_or_else(|| panic!("no close event in:\n{text}"));
    for field in [
        "code=1000",
        "reason=\"bye\"",
        "closed_by=\"peer\"",
        "messages=3",
        "bytes=11",
    ] {
        assert!(closed.contains(field), "{field} missing in: {closed}");
    }
}

fn three_per_minute() -> RateLimitLayer {
    RateLimitLayer::new(3, Duration::from_secs(60))
}

/// Sends five messages at once to a handler limited to three: three echoes, then close 1008.
async fn excess_closes_with_1008(handler: impl Handler) {
    let server = start(handler, Config::default()).await;
    let mut client = connect(&server.url("/limited")).await;
    for i in 0..5 {
        client
            .send(WsMessage::text(format!("m{i}")))
            .await
            .expect("send");
    }
    for i in 0..3 {
        assert_eq!(next_text(&mut client).await, format!("m{i}"));
    }
    let frame = expect_close(&mut client).await;
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "rate limit exceeded");
}

#[tokio::test]
async fn rate_limit_excess_closes_with_1008_in_any_stacking_order() {
    excess_closes_with_1008(
        HandlerBuilder::new()
            .layer(TraceLayer::new())
            .layer(three_per_minute())
            .layer(TimeoutLayer::new(Duration::from_secs(5)))
            .handler(Probe::new().0),
    )
    .await;
    excess_closes_with_1008(
        HandlerBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_secs(5)))
            .layer(TraceLayer::new())
            .layer(three_per_minute())
            .handler(Probe::new().0),
    )
    .await;
    // A layer used directly, without the builder.
    excess_closes_with_1008(three_per_minute().layer(Probe::new().0)).await;
}

/// Reads data messages until the server's close frame; returns their texts.
async fn texts_until_close(client: &mut Client) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, futures::StreamExt::next(client))
            .await
            .expect("message in time")
        {
            Some(Ok(WsMessage::Text(text))) => texts.push(text.as_str().to_owned()),
            Some(Ok(WsMessage::Close(_))) | None => return texts,
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("read failed: {error}"),
        }
    }
}

#[tokio::test]
async fn rate_limit_drop_policy_discards_excess_and_keeps_the_connection() {
    let (probe, mut closes) = Probe::new();
    let limit = RateLimitLayer::new(1, Duration::from_secs(60))
        .burst(2)
        .on_excess(Excess::Drop);
    let server = start(limit.layer(probe), Config::default()).await;
    let mut client = connect(&server.url("/limited")).await;
    for text in ["a", "b", "c", "d"] {
        client.send(WsMessage::text(text)).await.expect("send");
    }
    client.close(None).await.expect("close");
    // The close handshake is the peer's: the connection was not closed by the limit.
    assert_eq!(texts_until_close(&mut client).await, ["a", "b"]);
    assert_eq!(next_close(&mut closes).await.code_number(), 1005);
}

#[tokio::test]
async fn rate_limit_wait_policy_slows_the_peer_down() {
    let limit = RateLimitLayer::new(20, Duration::from_secs(1))
        .burst(1)
        .on_excess(Excess::Wait);
    let server = start(limit.layer(Probe::new().0), Config::default()).await;
    let mut client = connect(&server.url("/limited")).await;
    let started = std::time::Instant::now();
    for i in 0..6 {
        client
            .send(WsMessage::text(format!("w{i}")))
            .await
            .expect("send");
    }
    for i in 0..6 {
        assert_eq!(next_text(&mut client).await, format!("w{i}"));
    }
    // One message at once, then one every 50 ms: five waits.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(240), "took {elapsed:?}");
}

/// Echoes, except that `slow` takes far longer than any timeout in these tests.
struct Sluggish;

impl Handler for Sluggish {
    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        if message.as_text() == Some("slow") {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        session.send(message).await
    }
}

#[tokio::test]
async fn timeout_closes_with_1011_when_a_message_takes_too_long() {
    let handler = HandlerBuilder::new()
        .layer(TraceLayer::new())
        .layer(TimeoutLayer::new(Duration::from_millis(200)))
        .handler(Sluggish);
    let server = start(handler, Config::default()).await;
    let mut client = connect(&server.url("/ws")).await;
    round_trip(&mut client, "fast").await;
    let started = std::time::Instant::now();
    client.send(WsMessage::text("slow")).await.expect("send");
    let frame = expect_close(&mut client).await;
    assert_eq!(u16::from(frame.code), 1011);
    assert_eq!(frame.reason.as_str(), "handler timed out");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Only that connection paid.
    let mut other = connect(&server.url("/ws")).await;
    round_trip(&mut other, "fine").await;
}
