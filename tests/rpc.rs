//! Typed calls over WebSocket: many in flight at once, timeouts, pushes, dropped connections,
//! and bad envelopes on both sides.

#![cfg(all(feature = "json", feature = "client", feature = "test-util"))]

mod common;

use std::time::Duration;

use common::*;
use futures::SinkExt;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::rpc::{RpcClient, RpcError, RpcHandler, RpcService, push};
use wsgrpc::ws::{Config, Handler, Message, Session, SessionHandle};

#[derive(Debug, Serialize, Deserialize)]
enum Call {
    /// Answered after `delay_ms`, echoing `n` doubled.
    Double { n: u64, delay_ms: u64 },
    /// Pushes `Notice(n)` first, then answers.
    Notify { n: u64 },
    /// Never answered.
    Hang,
    /// Fails with a service error.
    Refuse,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Reply {
    Doubled(u64),
    Notified,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Notice(u64);

struct Service;

impl RpcService for Service {
    type Request = Call;
    type Response = Reply;

    async fn call(&self, session: &SessionHandle, call: Call) -> Result<Reply, RpcError> {
        match call {
            Call::Double { n, delay_ms } => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Ok(Reply::Doubled(n * 2))
            }
            Call::Notify { n } => {
                push(session, &Notice(n))
                    .await
                    .map_err(|error| RpcError::internal(error.to_string()))?;
                Ok(Reply::Notified)
            }
            Call::Hang => std::future::pending().await,
            Call::Refuse => Err(RpcError::new("forbidden", "not today")),
        }
    }
}

async fn client(
    server: &TestServer,
) -> (RpcClient<Call, Reply>, tokio::sync::mpsc::Receiver<Notice>) {
    RpcClient::builder::<Notice>(server.url("/rpc"))
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_each_reach_their_caller() {
    let server = start(
        RpcHandler::new(Service).max_in_flight(256),
        Config::default(),
    )
    .await;
    let (caller, _pushes) = client(&server).await;
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..1_000u64 {
        let caller = caller.clone();
        // Varying delays make replies come back out of order.
        calls.spawn(async move { (n, caller.call(&Call::Double { n, delay_ms: n % 7 }).await) });
    }
    let mut answered = 0;
    while let Some(joined) = calls.join_next().await {
        let (n, reply) = joined.expect("call task");
        assert_eq!(
            reply.expect("reply"),
            Reply::Doubled(n * 2),
            "call {n} got someone else's reply"
        );
        answered += 1;
    }
    assert_eq!(answered, 1_000);
    assert_eq!(caller.in_flight(), 0);
    assert_eq!(caller.unknown_replies(), 0);
}

#[tokio::test]
async fn service_errors_timeouts_and_pushes() {
    let server = start(RpcHandler::new(Service), Config::default()).await;
    let (caller, mut pushes) = client(&server).await;

    match caller.call(&Call::Refuse).await {
        Err(wsgrpc::Error::Rpc(error)) => assert_eq!(
            (error.code.as_str(), error.message.as_str()),
            ("forbidden", "not today")
        ),
        other => panic!("expected the service's error, got {other:?}"),
    }

    let slow = caller
        .call_with_timeout(
            &Call::Double {
                n: 1,
                delay_ms: 500,
            },
            Duration::from_millis(50),
        )
        .await;
    assert!(matches!(slow, Err(wsgrpc::Error::Timeout(_))), "{slow:?}");
    assert_eq!(
        caller.in_flight(),
        0,
        "a timed-out call leaves nothing behind"
    );

    assert_eq!(
        caller.call(&Call::Notify { n: 7 }).await.expect("reply"),
        Reply::Notified
    );
    let notice = tokio::time::timeout(WAIT, pushes.recv())
        .await
        .expect("push in time");
    assert_eq!(notice, Some(Notice(7)));

    // The late reply of the timed-out call arrives before this one and is counted, not crashed on.
    assert_eq!(
        caller
            .call(&Call::Double {
                n: 2,
                delay_ms: 600
            })
            .await
            .expect("reply"),
        Reply::Doubled(4)
    );
    assert_eq!(caller.unknown_replies(), 1);
}

#[tokio::test]
async fn calls_in_flight_fail_when_the_connection_drops() {
    let server = start(RpcHandler::new(Service), Config::default()).await;
    let (caller, _pushes) = client(&server).await;
    let hanging = tokio::spawn({
        let caller = caller.clone();
        async move { caller.call(&Call::Hang).await }
    });
    // Wait until the call is registered, then take the server away.
    tokio::time::timeout(WAIT, async {
        while caller.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("call in flight");
    server.handle.shutdown();
    let outcome = tokio::time::timeout(WAIT, hanging)
        .await
        .expect("fails fast, not by timeout")
        .expect("task");
    assert!(
        matches!(outcome, Err(wsgrpc::Error::ConnectionClosed)),
        "{outcome:?}"
    );
}

/// A server that answers every call with junk first: an unknown id, a non-envelope, a reply
/// without id, then the real reply.
struct Prankster;

impl Handler for Prankster {
    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        let call: serde_json::Value = serde_json::from_str(message.as_text().unwrap_or("{}"))?;
        let id = call["id"].as_u64().unwrap_or(0);
        session
            .send(r#"{"id": 999999, "ok": {"Doubled": 0}}"#)
            .await?;
        session.send("this is not json").await?;
        session.send(r#"{"ok": {"Doubled": 0}}"#).await?;
        session.send(Message::binary(vec![1, 2, 3])).await?;
        session
            .send(format!(r#"{{"id": {id}, "ok": {{"Doubled": 42}}}}"#))
            .await
    }
}

#[tokio::test]
async fn client_survives_unknown_ids_and_malformed_replies() {
    let server = start(Prankster, Config::default()).await;
    let (caller, _pushes) = client(&server).await;
    assert_eq!(
        caller
            .call(&Call::Double { n: 21, delay_ms: 0 })
            .await
            .expect("reply"),
        Reply::Doubled(42)
    );
    assert_eq!(caller.unknown_replies(), 1);
    assert_eq!(caller.malformed_messages(), 3);
    // And it keeps working.
    assert_eq!(
        caller
            .call(&Call::Double { n: 21, delay_ms: 0 })
            .await
            .expect("reply"),
        Reply::Doubled(42)
    );
}

#[tokio::test]
async fn server_answers_malformed_calls_with_bad_request_and_keeps_serving() {
    let server = start(RpcHandler::new(Service), Config::default()).await;
    let mut raw = connect(&server.url("/rpc")).await;
    let expectations = [
        ("not json at all", "null"),
        (r#"{"call": {"Double": {"n": 1, "delay_ms": 0}}}"#, "null"),
        (r#"{"id": 5, "call": "NoSuchCall"}"#, "5"),
    ];
    for (sent, id) in expectations {
        raw.send(WsMessage::text(sent)).await.expect("send");
        let WsMessage::Text(reply) = next_data(&mut raw).await else {
            panic!("expected text")
        };
        let reply: serde_json::Value = serde_json::from_str(reply.as_str()).expect("json reply");
        assert_eq!(reply["id"].to_string(), id, "for {sent}");
        assert_eq!(reply["error"]["code"], "bad_request", "for {sent}");
    }
    raw.send(WsMessage::text(
        r#"{"id": 6, "call": {"Double": {"n": 4, "delay_ms": 0}}}"#,
    ))
    .await
    .expect("send");
    let WsMessage::Text(reply) = next_data(&mut raw).await else {
        panic!("expected text")
    };
    assert_eq!(reply.as_str(), r#"{"id":6,"ok":{"Doubled":8}}"#);
}

#[cfg(feature = "test-util")]
#[tokio::test]
async fn rpc_handler_under_the_in_memory_harness() {
    use wsgrpc::testing::TestConnection;
    let mut connection = TestConnection::open(RpcHandler::new(Service))
        .await
        .expect("open");
    connection
        .send(r#"{"id": 1, "call": {"Double": {"n": 10, "delay_ms": 0}}}"#)
        .await;
    connection
        .expect_text(r#"{"id":1,"ok":{"Doubled":20}}"#)
        .await;
    connection.send(Message::binary(vec![0])).await;
    connection
        .expect_text(r#"{"id":null,"error":{"code":"bad_request","message":"calls are JSON text messages"}}"#)
        .await;
}
