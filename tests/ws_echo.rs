//! Echo over real sockets: sizes from empty to 16 MiB, fragments, pings, many clients at once.

#![cfg(feature = "ws")]

mod common;

use common::*;
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use wsgrpc::ws::{Config, Message, SessionHandle, handler_fn};

fn echo() -> impl wsgrpc::ws::Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn text_and_binary_of_every_size_come_back_unchanged() {
    let server = start(echo(), Config::default()).await;
    let mut client = connect(&server.url("/ws")).await;
    for len in [0, 1, 125, 126, 65_535, 65_536, 16 << 20] {
        let data = pattern(len);
        client
            .send(WsMessage::binary(data.clone()))
            .await
            .expect("send binary");
        match next_data(&mut client).await {
            WsMessage::Binary(reply) => assert!(reply == data, "binary of {len} bytes changed"),
            other => panic!("expected binary, got {other:?}"),
        }
        let text: String = data
            .iter()
            .map(|byte| char::from(b'a' + byte % 26))
            .collect();
        client
            .send(WsMessage::text(text.clone()))
            .await
            .expect("send text");
        match next_data(&mut client).await {
            WsMessage::Text(reply) => {
                assert!(reply.as_str() == text, "text of {len} bytes changed")
            }
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn fragmented_message_is_reassembled() {
    let server = start(echo(), Config::default()).await;
    let mut client = connect(&server.url("/ws")).await;
    let parts = ["frag", "men", "ted ✓"];
    client
        .feed(WsMessage::Frame(Frame::message(
            parts[0],
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .expect("first");
    client
        .feed(WsMessage::Frame(Frame::message(
            parts[1],
            OpCode::Data(Data::Continue),
            false,
        )))
        .await
        .expect("middle");
    // A ping between fragments is allowed (RFC 6455 section 5.4) and must not disturb reassembly.
    client
        .feed(WsMessage::Ping("between".into()))
        .await
        .expect("ping");
    client
        .send(WsMessage::Frame(Frame::message(
            parts[2],
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .expect("last");
    match next_data(&mut client).await {
        WsMessage::Text(text) => assert_eq!(text.as_str(), parts.concat()),
        other => panic!("expected the reassembled text, got {other:?}"),
    }
}

#[tokio::test]
async fn client_ping_is_answered_with_its_payload() {
    let server = start(echo(), Config::default()).await;
    let mut client = connect(&server.url("/ws")).await;
    client
        .send(WsMessage::Ping("are you there".into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            match futures::StreamExt::next(&mut client).await {
                Some(Ok(WsMessage::Pong(payload))) => return payload,
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    })
    .await
    .expect("pong in time");
    assert_eq!(&pong[..], b"are you there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_each_get_their_own_replies() {
    let server = start(echo(), Config::default()).await;
    let mut clients = tokio::task::JoinSet::new();
    for client_id in 0..200 {
        let url = server.url("/ws");
        clients.spawn(async move {
            let mut client = connect(&url).await;
            for round in 0..10 {
                round_trip(&mut client, &format!("client {client_id} round {round}")).await;
            }
            client.close(None).await.expect("close");
            client_id
        });
    }
    let mut finished = Vec::new();
    while let Some(result) = clients.join_next().await {
        finished.push(result.expect("client task"));
    }
    finished.sort_unstable();
    assert_eq!(finished, (0..200).collect::<Vec<_>>());
    server.wait_connections(0).await;
}

#[tokio::test]
async fn session_sees_path_query_headers_and_peer() {
    use wsgrpc::ws::{Handler, Session};
    struct Describe;
    impl Handler for Describe {
        async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
            let description = format!(
                "{} {:?} {:?} {}",
                session.path(),
                session.query(),
                session
                    .headers()
                    .get("x-team")
                    .map(|value| value.to_str().unwrap_or("?")),
                session
                    .peer_addr()
                    .map(|addr| addr.ip().is_loopback())
                    .unwrap_or(false),
            );
            session.send(description).await
        }
    }
    let server = start(Describe, Config::default()).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.url("/rooms/blue?user=ann"),
        )
        .expect("request");
    request
        .headers_mut()
        .insert("x-team", "core".parse().expect("header"));
    let (mut client, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    match next_data(&mut client).await {
        WsMessage::Text(text) => assert_eq!(
            text.as_str(),
            r#"/rooms/blue Some("user=ann") Some("core") true"#
        ),
        other => panic!("expected a description, got {other:?}"),
    }
}
