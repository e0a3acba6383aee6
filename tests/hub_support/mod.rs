//! What the hub tests share: a room handler that publishes with the waiting `publish_to`, a
//! server for it, members joining over real sockets, and numbered messages to check order.
#![allow(dead_code, unreachable_pub)]

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::ws::{CloseReason, Config, Handler, Hub, Message, PathParams, Router, Session};

use crate::common::{Client, TestServer, connect, next_text, start};

/// Clients of `/members/{room}` join the room and are told `joined <node> <local>` (their
/// connection id); whatever a client of `/publish/{room}` (or a member) sends is published to
/// the room with the waiting `publish_to`. Close reasons go to `closes`, when set.
pub struct Paced {
    pub hub: Hub,
    pub joins: bool,
    pub closes: Option<mpsc::Sender<CloseReason>>,
}

fn room(session: &Session) -> String {
    session
        .extensions()
        .get::<PathParams>()
        .and_then(|params| params.get("room"))
        .expect("routed by /{kind}/{room}")
        .to_owned()
}

impl Handler for Paced {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        if self.joins {
            self.hub.join(&session.handle(), &room(session));
            let id = session.id();
            session
                .send(format!("joined {} {}", id.node(), id.get()))
                .await?;
        }
        Ok(())
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        let delivery = self.hub.publish_to(&room(session), message).await;
        // Nobody healthy may be dropped; a stalled member may, once, after the grace.
        assert_eq!(delivery.closed, 0, "{delivery:?}");
        Ok(())
    }

    async fn on_close(&self, session: &mut Session, reason: CloseReason) {
        self.hub.remove(session.id());
        if let Some(closes) = &self.closes {
            let _ = closes.try_send(reason);
        }
    }
}

/// A server routing `/members/{room}` and `/publish/{room}` to `hub`.
pub async fn paced_server(
    hub: &Hub,
    config: Config,
    closes: Option<mpsc::Sender<CloseReason>>,
) -> TestServer {
    let router = Router::new()
        .route(
            "/members/{room}",
            Paced {
                hub: hub.clone(),
                joins: true,
                closes: closes.clone(),
            },
        )
        .route(
            "/publish/{room}",
            Paced {
                hub: hub.clone(),
                joins: false,
                closes,
            },
        );
    start(router, config).await
}

/// `count` members of `room`, each past its `joined` greeting.
pub async fn join_members(server: &TestServer, room: &str, count: usize) -> Vec<Client> {
    let url = server.url(&format!("/members/{room}"));
    futures::stream::iter(0..count)
        .map(|_| {
            let url = url.clone();
            async move {
                let mut client = connect(&url).await;
                let joined = next_text(&mut client).await;
                assert!(joined.starts_with("joined "), "{joined}");
                client
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// A message of `size` bytes (at least 8) carrying its sequence number in its first 8 bytes.
pub fn numbered(sequence: u64, size: usize) -> WsMessage {
    let mut payload = vec![0x2a_u8; size.max(8)];
    payload[..8].copy_from_slice(&sequence.to_be_bytes());
    WsMessage::binary(payload)
}

/// The sequence number of a [`numbered`] message.
pub fn sequence_of(message: &WsMessage) -> u64 {
    match message {
        WsMessage::Binary(data) if data.len() >= 8 => {
            u64::from_be_bytes(data[..8].try_into().expect("8 bytes"))
        }
        other => panic!("expected a numbered message, got {other:?}"),
    }
}
