//! The in-memory test harness itself: its expectations pass when they should and fail, with a
//! clear message, when they should not.

#![cfg(feature = "test-util")]

use std::time::Duration;

use http::StatusCode;
use wsgrpc::testing::TestConnection;
use wsgrpc::ws::{CloseCode, ClosedBy, Config, Handler, Message, Rejection, Session, Upgrade};

/// Echoes, fails on "fail", closes on "bye", picks the `v2` subprotocol, refuses `/private`.
struct Subject;

impl Handler for Subject {
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        if upgrade.path() == "/panic" {
            panic!("on_upgrade panicked on purpose");
        }
        if upgrade.path() == "/private" {
            return Err(Rejection::new(StatusCode::FORBIDDEN, "private\n"));
        }
        upgrade.select_protocol("v2");
        Ok(())
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        match message.as_text() {
            Some("fail") => Err(wsgrpc::Error::handler("asked to")),
            Some("bye") => session.close(CloseCode::Normal, "bye to you").await,
            Some("quiet") => Ok(()),
            _ => session.send(message).await,
        }
    }
}

#[tokio::test]
async fn expectations_pass_on_the_right_traffic() {
    let mut connection = TestConnection::open(Subject).await.expect("accepted");
    connection.send("one").await;
    connection.expect_text("one").await;
    connection.send(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(
        connection.expect_message().await,
        Message::binary(vec![1, 2, 3])
    );
    connection.send("quiet").await;
    connection.expect_silence(Duration::from_millis(50)).await;
    connection.send("bye").await;
    let seen_by_server = connection
        .expect_close(CloseCode::Normal, "bye to you")
        .await;
    assert_eq!(seen_by_server.closed_by, ClosedBy::Local);
}

#[tokio::test]
async fn handler_errors_show_up_as_1011() {
    let mut connection = TestConnection::open(Subject).await.expect("accepted");
    connection.send("fail").await;
    connection
        .expect_close(CloseCode::Error, "handler error")
        .await;
}

#[tokio::test]
async fn client_close_reaches_the_server_side() {
    let connection = TestConnection::open(Subject).await.expect("accepted");
    let reason = connection
        .close(CloseCode::Library(4000), "test over")
        .await;
    assert_eq!(reason.code_number(), 4000);
    assert_eq!(reason.reason.as_str(), "test over");
    assert_eq!(reason.closed_by, ClosedBy::Peer);
}

#[tokio::test]
async fn upgrade_decisions_are_visible() {
    let refused = TestConnection::builder()
        .path("/private")
        .open(Subject)
        .await;
    assert_eq!(
        refused.expect_err("refused").status(),
        StatusCode::FORBIDDEN
    );
    let accepted = TestConnection::builder()
        .path("/public")
        .header("sec-websocket-protocol", "v1, v2")
        .open(Subject)
        .await
        .expect("accepted");
    assert_eq!(accepted.protocol(), Some("v2"));
}

#[tokio::test]
async fn the_harness_applies_the_servers_origin_policy() {
    let cross_site = TestConnection::builder()
        .header("origin", "https://evil.example")
        .open(Subject)
        .await;
    assert_eq!(
        cross_site.expect_err("cross-site").status(),
        StatusCode::FORBIDDEN
    );
    // The default Host is `wsgrpc.test`; a test's own Host replaces it (one Host, RFC 9112).
    TestConnection::builder()
        .header("origin", "http://wsgrpc.test")
        .open(Subject)
        .await
        .expect("same origin");
    TestConnection::builder()
        .header("host", "chat.example:443")
        .header("origin", "https://chat.example")
        .open(Subject)
        .await
        .expect("same origin, default port spelled out");
    TestConnection::builder()
        .header("origin", "https://evil.example")
        .config(Config::default().allow_any_origin())
        .open(Subject)
        .await
        .expect("any origin allowed");
}

/// Runs `check` and returns its panic message, which must exist.
async fn panic_message(check: impl std::future::Future<Output = ()> + Send + 'static) -> String {
    let error = tokio::spawn(check)
        .await
        .expect_err("the expectation should have failed");
    let panic = error.into_panic();
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn expectations_fail_clearly() {
    let message = panic_message(async {
        let mut connection = TestConnection::builder()
            .timeout(Duration::from_millis(50))
            .open(Subject)
            .await
            .expect("accepted");
        connection.send("quiet").await;
        connection.expect_message().await;
    })
    .await;
    assert!(
        message.contains("nothing from the handler within"),
        "{message}"
    );

    let message = panic_message(async {
        let mut connection = TestConnection::open(Subject).await.expect("accepted");
        connection.send("actual").await;
        connection.expect_text("expected").await;
    })
    .await;
    assert!(message.contains("unexpected text"), "{message}");

    let message = panic_message(async {
        let mut connection = TestConnection::open(Subject).await.expect("accepted");
        connection.send("fail").await;
        connection.expect_close(CloseCode::Normal, "").await;
    })
    .await;
    assert!(message.contains("unexpected close code"), "{message}");

    let message = panic_message(async {
        let mut connection = TestConnection::open(Subject).await.expect("accepted");
        connection.send("noise").await;
        connection.expect_silence(Duration::from_millis(200)).await;
    })
    .await;
    assert!(message.contains("expected silence"), "{message}");
}

#[tokio::test]
async fn a_panicking_on_upgrade_is_contained_and_answered_with_500_as_on_a_server() {
    let refused = TestConnection::builder()
        .path("/panic")
        .open(Subject)
        .await
        .expect_err("a panic is a refusal, not a crashed test");
    assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The harness goes on serving other connections of the same handler type.
    let mut connection = TestConnection::open(Subject).await.expect("accepted");
    connection.send("still here").await;
    connection.expect_text("still here").await;
}
