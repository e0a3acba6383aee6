//! The hub over real sockets: fan-out to 500 clients in two rooms, slow consumers dropped or
//! lagged while everyone else keeps receiving, and presence back to zero when everyone leaves;
//! a burst of 10,000 messages from one publisher reaching every member, paced by the waiting
//! `publish_to`, while a member that stops reading is still closed after the grace.

#![cfg(feature = "ws")]

mod common;
mod hub_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::ws::{
    CloseReason, Config, ConnectionId, Handler, Hub, Message, PathParams, Router, Session,
    SlowConsumer,
};

const PER_ROOM: usize = 250;
const ROOMS: [&str; 2] = ["red", "blue"];

/// Joins the room of its path, broadcasts what its client says to that room, leaves on close.
struct RoomChat {
    hub: Hub,
    /// Connection ids by number, so the test can address one connection through the hub.
    ids: Arc<Mutex<HashMap<u64, ConnectionId>>>,
}

fn room(session: &Session) -> &str {
    session
        .extensions()
        .get::<PathParams>()
        .and_then(|params| params.get("room"))
        .expect("routed by /rooms/{room}")
}

impl Handler for RoomChat {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        let room = room(session).to_owned();
        self.ids
            .lock()
            .expect("not poisoned")
            .insert(session.id().get(), session.id());
        self.hub.join(&session.handle(), &room);
        session
            .send(format!("joined {} {room}", session.id()))
            .await
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        self.hub.broadcast_to(room(session), message);
        Ok(())
    }

    async fn on_close(&self, session: &mut Session, _reason: CloseReason) {
        self.hub.remove(session.id());
    }
}

struct Member {
    client: Client,
    id: ConnectionId,
    room: &'static str,
}

struct Setup {
    server: TestServer,
    hub: Hub,
    members: Vec<Member>,
}

/// A server routing `/rooms/{room}` to a hub, and `PER_ROOM` clients in each of the two rooms.
async fn setup(policy: SlowConsumer, config: Config) -> Setup {
    let hub = Hub::with_policy(policy);
    let ids = Arc::new(Mutex::new(HashMap::new()));
    let router = Router::new().route(
        "/rooms/{room}",
        RoomChat {
            hub: hub.clone(),
            ids: ids.clone(),
        },
    );
    let server = start(router, config).await;
    let urls: Vec<(&'static str, String)> = (0..PER_ROOM * ROOMS.len())
        .map(|i| {
            let room = ROOMS[i % ROOMS.len()];
            (room, server.url(&format!("/rooms/{room}")))
        })
        .collect();
    let members: Vec<Member> = futures::stream::iter(urls)
        .map(|(room, url)| {
            let ids = ids.clone();
            async move {
                let mut client = connect(&url).await;
                let joined = next_text(&mut client).await;
                let number: u64 = joined
                    .split(' ')
                    .nth(1)
                    .and_then(|id| id.parse().ok())
                    .expect("joined <id> <room>");
                let id = ids.lock().expect("not poisoned")[&number];
                Member { client, id, room }
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for room in ROOMS {
        assert_eq!(hub.presence(room), PER_ROOM);
    }
    Setup {
        server,
        hub,
        members,
    }
}

/// Reads texts until `end`; binary messages are counted, not kept.
async fn texts_until(client: &mut Client, end: &str) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        match next_data(client).await {
            WsMessage::Text(text) => {
                let done = text.as_str() == end;
                texts.push(text.as_str().to_owned());
                if done {
                    return texts;
                }
            }
            WsMessage::Binary(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Every member (but `skip`) reads until `end` and must have received exactly `expected(room)`.
async fn everyone_received(
    members: &mut [Member],
    skip: Option<ConnectionId>,
    expected: impl Fn(&str) -> Vec<String>,
) {
    let checks = members
        .iter_mut()
        .filter(|member| Some(member.id) != skip)
        .map(|member| {
            let expected = expected(member.room);
            async move {
                let received = texts_until(&mut member.client, "end").await;
                assert_eq!(
                    received, expected,
                    "member {} of {}",
                    member.id, member.room
                );
            }
        });
    futures::future::join_all(checks).await;
}

/// Everyone leaves; the hub's presence counts and membership return to zero.
async fn everyone_leaves(setup: Setup) {
    let Setup {
        server,
        hub,
        members,
    } = setup;
    let closes = members.into_iter().map(|mut member| async move {
        close_client(&mut member.client).await;
    });
    futures::future::join_all(closes).await;
    // Every on_close (and so every `hub.remove`) has run once the server counts no connection.
    server.wait_connections(0).await;
    for room in ROOMS {
        assert_eq!(hub.presence(room), 0, "{room}");
    }
    assert!(hub.is_empty());
    assert!(hub.rooms().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_500_clients_in_two_rooms_delivers_each_message_once_to_its_room() {
    let mut setup = setup(SlowConsumer::default(), Config::default()).await;

    // One member of each room speaks; the server broadcasts to that room only.
    let mut already_read: HashMap<ConnectionId, Vec<String>> = HashMap::new();
    for room in ROOMS {
        let speaker = setup
            .members
            .iter_mut()
            .find(|member| member.room == room)
            .expect("a member");
        for i in 0..5 {
            speaker
                .client
                .send(WsMessage::text(format!("{room}-{i}")))
                .await
                .expect("send");
        }
        // The speaker is in its room too: once it has its own last message back, every
        // broadcast of that room has been queued for everyone.
        let mut own = Vec::new();
        for _ in 0..5 {
            own.push(next_text(&mut speaker.client).await);
        }
        already_read.insert(speaker.id, own);
    }
    let delivery = setup.hub.broadcast("end");
    assert_eq!(delivery.delivered, PER_ROOM * ROOMS.len());
    assert_eq!(
        (delivery.dropped, delivery.lagged, delivery.closed),
        (0, 0, 0)
    );

    let expected = |room: &str| {
        let mut texts: Vec<String> = (0..5).map(|i| format!("{room}-{i}")).collect();
        texts.push("end".to_owned());
        texts
    };
    let checks = setup.members.iter_mut().map(|member| {
        let expected = expected(member.room);
        let mut received = already_read.remove(&member.id).unwrap_or_default();
        async move {
            received.extend(texts_until(&mut member.client, "end").await);
            assert_eq!(
                received, expected,
                "member {} of {}",
                member.id, member.room
            );
        }
    });
    futures::future::join_all(checks).await;

    everyone_leaves(setup).await;
}

/// Sends 64 KiB messages to one member that reads nothing until its queue overflows; returns the
/// delivery that overflowed and how many were queued before.
async fn stall(hub: &Hub, id: ConnectionId) -> (wsgrpc::ws::Delivery, usize) {
    let big = Bytes::from(vec![0x5a; 64 * 1024]);
    let mut queued = 0;
    tokio::time::timeout(WAIT, async {
        loop {
            let delivery = hub.send_to(id, big.clone());
            if delivery.delivered == 0 {
                return (delivery, queued);
            }
            queued += 1;
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the queue of a client that reads nothing fills up")
}

/// Room messages after the stall: three per room, then `end` to all. At most four messages per
/// member, within the queue bound of 8, so only a stalled member can overflow.
fn after_stall(hub: &Hub) -> Vec<wsgrpc::ws::Delivery> {
    let mut deliveries = Vec::new();
    for i in 0..3 {
        for room in ROOMS {
            deliveries.push(hub.broadcast_to(room, format!("{room}-tick-{i}")));
        }
    }
    deliveries.push(hub.broadcast("end"));
    deliveries
}

fn ticks(room: &str) -> Vec<String> {
    let mut texts: Vec<String> = (0..3).map(|i| format!("{room}-tick-{i}")).collect();
    texts.push("end".to_owned());
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_dropped_with_1008_while_the_other_499_keep_receiving() {
    let config = Config::default().outgoing_queue(8);
    let mut setup = setup(SlowConsumer::default(), config).await;
    let stalled = setup.members[0].id;
    let stalled_room = setup.members[0].room;

    let (overflow, queued) = stall(&setup.hub, stalled).await;
    assert!(queued >= 8, "only {queued} queued before the overflow");
    assert_eq!(overflow.dropped, 1);
    assert!(!setup.hub.contains(stalled));
    assert_eq!(setup.hub.presence(stalled_room), PER_ROOM - 1);

    for delivery in after_stall(&setup.hub) {
        assert_eq!(
            (delivery.dropped, delivery.lagged, delivery.closed),
            (0, 0, 0)
        );
    }
    everyone_received(&mut setup.members, Some(stalled), ticks).await;

    // The stalled client, once it reads again, finds the close frame after what was in flight.
    let frame = expect_close(&mut setup.members[0].client).await;
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "slow consumer");

    everyone_leaves(setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_lags_under_the_lag_policy_and_catches_up_later() {
    let config = Config::default().outgoing_queue(8);
    let mut setup = setup(SlowConsumer::Lag, config).await;
    let stalled = setup.members[0].id;
    let stalled_room = setup.members[0].room;

    let (overflow, _) = stall(&setup.hub, stalled).await;
    assert_eq!(overflow.lagged, 1);
    assert!(setup.hub.contains(stalled));
    assert_eq!(setup.hub.presence(stalled_room), PER_ROOM);

    for delivery in after_stall(&setup.hub) {
        // Only the stalled member may lag; nobody is dropped.
        assert!(delivery.lagged <= 1, "{delivery:?}");
        assert_eq!((delivery.dropped, delivery.closed), (0, 0));
    }
    everyone_received(&mut setup.members, Some(stalled), ticks).await;
    let lagged = setup.hub.lagged(stalled).expect("still a member");
    assert!(lagged >= 1);

    // Once it reads again, it receives what is sent from then on.
    let (stalled_member, _) = setup.members.split_first_mut().expect("members");
    let reader = async {
        let texts = texts_until(&mut stalled_member.client, "after").await;
        // What it got is what was sent, in order, minus what it lagged on.
        let mut expected = ticks(stalled_room);
        expected.push("after".to_owned());
        let mut rest = expected.iter();
        for text in &texts {
            assert!(
                rest.any(|want| want == text),
                "{text} out of order in {texts:?}"
            );
        }
    };
    let sender = async {
        tokio::time::timeout(WAIT, async {
            while setup.hub.send_to(stalled, "after").delivered == 0 {
                // Pacing while the client drains megabytes; not a wait for an event.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("room again once the client reads");
    };
    tokio::join!(reader, sender);

    everyone_leaves(setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_closed_after_the_grace_while_the_others_get_everything() {
    let grace = Duration::from_millis(500);
    let hub = Hub::builder()
        .slow_consumer_grace(grace)
        .build()
        .expect("in-process");
    let (closes, mut closed) = tokio::sync::mpsc::channel(64);
    let config = Config::default().outgoing_queue(8);
    let server = hub_support::paced_server(&hub, config, Some(closes)).await;
    let mut clients = hub_support::join_members(&server, "stall", 20).await;
    let _stalled = clients.pop().expect("a member");
    // 64 KiB messages: the stalled client's socket buffers and its queue of 8 fill after a few
    // dozen, then the hub waits the grace for it and closes it; the others read them all.
    const COUNT: u64 = 200;
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                for expected in 0..COUNT {
                    let message = next_data(&mut client).await;
                    assert_eq!(hub_support::sequence_of(&message), expected);
                }
                client
            })
        })
        .collect();
    let mut publisher = connect(&server.url("/publish/stall")).await;
    let mut messages = futures::stream::iter(
        (0..COUNT).map(|sequence| Ok(hub_support::numbered(sequence, 64 * 1024))),
    );
    let started = std::time::Instant::now();
    tokio::time::timeout(WAIT, publisher.send_all(&mut messages))
        .await
        .expect("the publisher goes on once the stalled member is dropped")
        .expect("send");
    let mut clients = Vec::new();
    for reader in readers {
        clients.push(
            tokio::time::timeout(WAIT, reader)
                .await
                .expect("in time")
                .expect("reader"),
        );
    }
    assert!(
        started.elapsed() >= grace,
        "the stalled member had its grace"
    );
    assert_eq!(hub.presence("stall"), 19, "only the stalled member left");
    // The server closed it as a slow consumer. (Its close frame waits behind the data it never
    // read; whether the peer sees it depends on when it reads again, see ws_hub's 1008 test.)
    let reason = tokio::time::timeout(WAIT, closed.recv())
        .await
        .expect("the stalled connection ends")
        .expect("a close reason");
    assert_eq!(u16::from(reason.code), 1008, "{reason:?}");
    assert_eq!(reason.reason.as_str(), "slow consumer");
    for client in &mut clients {
        close_client(client).await;
    }
    close_client(&mut publisher).await;
}
