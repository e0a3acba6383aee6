//! Typed JSON messages over real sockets: values in and out, and what a message that does not
//! parse gets under each policy.

#![cfg(feature = "json")]

mod common;

use common::*;
use futures::SinkExt;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::ws::{
    Config, HandlerBuilder, InvalidMessage, Json, JsonLayer, TypedHandler, TypedSession,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply {
    Ready { id: u64 },
    Sum { sum: i64 },
}

struct Calculator;

impl TypedHandler for Calculator {
    type In = Add;
    type Out = Reply;

    async fn on_open(&self, session: TypedSession<'_, Reply>) -> wsgrpc::Result<()> {
        let id = session.id().get();
        session.send(&Reply::Ready { id }).await
    }

    async fn on_message(&self, session: TypedSession<'_, Reply>, add: Add) -> wsgrpc::Result<()> {
        session.send(&Reply::Sum { sum: add.a + add.b }).await
    }
}

async fn json(client: &mut Client) -> serde_json::Value {
    serde_json::from_str(&next_text(client).await).expect("the server sends json")
}

#[tokio::test]
async fn typed_values_in_and_out() {
    let server = start(Json::new(Calculator), Config::default()).await;
    let mut client = connect(&server.url("/calc")).await;
    assert_eq!(json(&mut client).await["type"], "ready");
    client
        .send(WsMessage::text(r#"{"a": 40, "b": 2}"#))
        .await
        .expect("send");
    assert_eq!(
        json(&mut client).await,
        serde_json::json!({"type": "sum", "sum": 42})
    );
    // Binary messages carrying JSON are parsed too.
    client
        .send(WsMessage::binary(&b"{\"a\": 1, \"b\": 1}"[..]))
        .await
        .expect("send");
    assert_eq!(json(&mut client).await["sum"], 2);
}

#[tokio::test]
async fn malformed_json_gets_an_error_reply_and_the_connection_goes_on() {
    let server = start(Json::new(Calculator), Config::default()).await;
    let mut client = connect(&server.url("/calc")).await;
    json(&mut client).await; // ready

    for bad in [
        "not json",
        r#"{"a": 1}"#,
        r#"{"a": 1, "b": 2, "c": 3}"#,
        r#"{"a": "one", "b": 2}"#,
    ] {
        client.send(WsMessage::text(bad)).await.expect("send");
        let reply = json(&mut client).await;
        assert_eq!(reply["error"], "invalid message", "{bad}");
        assert!(
            reply["detail"]
                .as_str()
                .is_some_and(|detail| !detail.is_empty()),
            "{reply}"
        );
        // The next good message is handled as if nothing happened.
        client
            .send(WsMessage::text(r#"{"a": 2, "b": 3}"#))
            .await
            .expect("send");
        assert_eq!(json(&mut client).await["sum"], 5);
    }
}

#[tokio::test]
async fn close_policy_answers_malformed_json_with_1007() {
    let handler = HandlerBuilder::new()
        .layer(JsonLayer::new().on_invalid(InvalidMessage::Close))
        .handler(Calculator);
    let server = start(handler, Config::default()).await;
    let mut client = connect(&server.url("/calc")).await;
    json(&mut client).await; // ready
    client
        .send(WsMessage::text(r#"{"a": 1, "b": 2}"#))
        .await
        .expect("send");
    assert_eq!(json(&mut client).await["sum"], 3);
    client.send(WsMessage::text("{oops")).await.expect("send");
    let frame = expect_close(&mut client).await;
    assert_eq!(u16::from(frame.code), 1007);
    assert_eq!(frame.reason.as_str(), "invalid json");

    // Other connections are not affected.
    let mut other = connect(&server.url("/calc")).await;
    json(&mut other).await;
    other
        .send(WsMessage::text(r#"{"a": 0, "b": 0}"#))
        .await
        .expect("send");
    assert_eq!(json(&mut other).await["sum"], 0);
}
