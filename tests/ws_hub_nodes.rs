//! The Hub across nodes, against real `redis-server` and `nats-server` processes started on free
//! loopback ports: crossing both ways with order kept and no double delivery, `send_to` a
//! connection on another node, presence counting both nodes, a broker killed mid-broadcast and
//! restarted (local delivery goes on, crossing resumes by itself), and a node that dies (its
//! members stop counting within three heartbeats).

#![cfg(any(feature = "redis", feature = "nats"))]

mod common;
mod hub_support;

use std::time::Duration;

use common::*;
use futures::SinkExt;
use hub_support::*;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::ws::{Config, ConnectionId, Crossing, Hub};

const HEARTBEAT: Duration = Duration::from_millis(200);

/// Generous: links reconnect with backoff (up to 5 s between attempts).
const LINK_WAIT: Duration = Duration::from_secs(20);

fn node_hub(broker: &BrokerProcess) -> Hub {
    Hub::builder()
        .broker(&broker.url())
        .heartbeat(HEARTBEAT)
        .build()
        .expect("a valid broker url")
}

async fn connected(hub: &Hub, connects: u64) {
    eventually("the hub's broker link is up", LINK_WAIT, || {
        hub.broker_stats()
            .is_some_and(|stats| stats.connected && stats.connects >= connects)
    })
    .await;
}

/// A member of `room` on `server`, and its connection id from the greeting.
async fn member(server: &TestServer, room: &str) -> (Client, ConnectionId) {
    let mut client = connect(&server.url(&format!("/members/{room}"))).await;
    let joined = next_text(&mut client).await;
    let mut parts = joined.split(' ').skip(1).map(|part| part.parse::<u64>());
    match (parts.next(), parts.next()) {
        (Some(Ok(node)), Some(Ok(local))) => (client, ConnectionId::from_parts(node, local)),
        _ => panic!("unexpected greeting {joined}"),
    }
}

/// Texts until `end` (included).
async fn texts_until(client: &mut Client, end: &str) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        let text = next_text(client).await;
        let done = text == end;
        texts.push(text);
        if done {
            return texts;
        }
    }
}

async fn crossing_both_ways_with_presence_and_send_to(kind: BrokerKind) {
    let broker = BrokerProcess::start(kind).await;
    let (hub_a, hub_b) = (node_hub(&broker), node_hub(&broker));
    connected(&hub_a, 1).await;
    connected(&hub_b, 1).await;
    let server_a = paced_server(&hub_a, Config::default(), None).await;
    let server_b = paced_server(&hub_b, Config::default(), None).await;
    let (mut a1, _) = member(&server_a, "room").await;
    let (mut b1, b1_id) = member(&server_b, "room").await;
    let (mut b2, _) = member(&server_b, "room").await;
    eventually("presence counts both nodes", WAIT, || {
        hub_a.presence("room") == 3 && hub_b.presence("room") == 3
    })
    .await;
    assert_eq!(hub_a.local_presence("room"), 1);
    assert_eq!(hub_a.broker_stats().expect("broker").nodes, 1);

    // Both ways, then 100 back to back from one sender: everyone gets each once, in order.
    a1.send(WsMessage::text("from-a")).await.expect("send");
    assert_eq!(next_text(&mut b1).await, "from-a");
    b1.send(WsMessage::text("from-b")).await.expect("send");
    assert_eq!(next_text(&mut a1).await, "from-a");
    assert_eq!(next_text(&mut a1).await, "from-b");
    let mut burst = futures::stream::iter((0..100).map(|i| Ok(WsMessage::text(format!("n{i}")))));
    a1.send_all(&mut burst).await.expect("send");
    a1.send(WsMessage::text("end")).await.expect("send");
    let mut expected: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    expected.push("end".to_owned());
    assert_eq!(texts_until(&mut a1, "end").await, expected, "node A, local");
    let mut expected_b = vec!["from-b".to_owned()];
    expected_b.extend(expected.iter().cloned());
    assert_eq!(texts_until(&mut b1, "end").await, expected_b, "node B");
    let mut expected_b2 = vec!["from-a".to_owned(), "from-b".to_owned()];
    expected_b2.extend(expected.iter().cloned());
    assert_eq!(texts_until(&mut b2, "end").await, expected_b2, "node B");

    // One connection on the other node, by its id.
    let delivery = hub_a.send_to(b1_id, "direct");
    assert_eq!(
        (delivery.delivered, delivery.crossing),
        (0, Crossing::Published)
    );
    assert_eq!(next_text(&mut b1).await, "direct");
    // Whole-hub broadcast from B reaches A, and B's own members once.
    hub_b.broadcast("everyone");
    assert_eq!(next_text(&mut a1).await, "everyone");
    assert_eq!(next_text(&mut b1).await, "everyone");
    assert_eq!(next_text(&mut b2).await, "everyone");

    // Leaving shows on the other node too.
    close_client(&mut b2).await;
    eventually("presence follows a leave on the other node", WAIT, || {
        hub_a.presence("room") == 2
    })
    .await;
    let stats = hub_b.broker_stats().expect("broker");
    assert!(stats.received >= 103, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    close_client(&mut a1).await;
    close_client(&mut b1).await;
}

async fn broker_killed_mid_broadcast_and_restarted(kind: BrokerKind) {
    let mut broker = BrokerProcess::start(kind).await;
    let (hub_a, hub_b) = (node_hub(&broker), node_hub(&broker));
    connected(&hub_a, 1).await;
    connected(&hub_b, 1).await;
    let server_a = paced_server(&hub_a, Config::default(), None).await;
    let server_b = paced_server(&hub_b, Config::default(), None).await;
    let (mut a1, _) = member(&server_a, "room").await;
    let (mut b1, _) = member(&server_b, "room").await;
    let (mut publisher, _) = member(&server_a, "room").await;

    // The first half crosses; the broker dies; the second half is published during the outage.
    let mut first = futures::stream::iter((0..200).map(|i| Ok(WsMessage::text(format!("m{i}")))));
    publisher.send_all(&mut first).await.expect("send");
    assert_eq!(next_text(&mut b1).await, "m0");
    broker.kill().await;
    eventually("node A sees the broker gone", LINK_WAIT, || {
        !hub_a.broker_stats().expect("broker").connected
    })
    .await;
    let mut second =
        futures::stream::iter((200..400).map(|i| Ok(WsMessage::text(format!("m{i}")))));
    publisher.send_all(&mut second).await.expect("send");
    // Local delivery went on: node A's members got all 400, in order.
    for client in [&mut a1, &mut publisher] {
        for i in 0..400 {
            assert_eq!(next_text(client).await, format!("m{i}"));
        }
    }
    let stats = hub_a.broker_stats().expect("broker");
    assert!(
        stats.failed >= 200,
        "publishes during the outage fail fast and are counted: {stats:?}"
    );

    broker.restart().await;
    connected(&hub_a, 2).await;
    connected(&hub_b, 2).await;
    publisher
        .send(WsMessage::text("after restart"))
        .await
        .expect("send");
    // Node B got a prefix of the first half (at-most-once: what was in flight may be lost),
    // nothing twice, nothing reordered, and then the message sent after the restart.
    let received = texts_until(&mut b1, "after restart").await;
    let numbers: Vec<u32> = received[..received.len() - 1]
        .iter()
        .map(|text| text[1..].parse().expect("m<number>"))
        .collect();
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "in order, once: {numbers:?}"
    );
    assert!(numbers.iter().all(|n| *n < 400), "{numbers:?}");
    eventually("presence counts both nodes again", WAIT, || {
        hub_a.presence("room") == 3 && hub_b.presence("room") == 3
    })
    .await;
    for client in [&mut a1, &mut b1, &mut publisher] {
        close_client(client).await;
    }
}

async fn a_node_that_dies_stops_counting_within_three_heartbeats(kind: BrokerKind) {
    let broker = BrokerProcess::start(kind).await;
    let hub_a = node_hub(&broker);
    connected(&hub_a, 1).await;
    let server_a = paced_server(&hub_a, Config::default(), None).await;
    let (mut a1, _) = member(&server_a, "room").await;

    // Node B runs on a runtime of its own, so that the test can end it at once, as a crash
    // would: no task of it runs again, and its hub never says goodbye.
    let url = broker.url();
    let (started, ready) = tokio::sync::oneshot::channel();
    let (crash, crashing) = std::sync::mpsc::channel::<()>();
    let node_b = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.spawn(async move {
            let hub_b = Hub::builder()
                .broker(&url)
                .heartbeat(HEARTBEAT)
                .build()
                .expect("valid");
            let server_b = paced_server(&hub_b, Config::default(), None).await;
            let _ = started.send((server_b.url("/members/room"), hub_b.clone()));
            // Keep the server and the hub alive until the runtime goes.
            std::future::pending::<()>().await;
            drop(server_b);
        });
        let _ = crashing.recv();
        runtime.shutdown_background();
    });
    let (url_b, hub_b) = ready.await.expect("node B started");
    connected(&hub_b, 1).await;
    let mut b1 = connect(&url_b).await;
    next_text(&mut b1).await;
    eventually("node A counts node B's member", WAIT, || {
        hub_a.presence("room") == 2
    })
    .await;

    // Crash node B: its runtime stops; the hub handle held here is leaked, so nothing drops it
    // and no goodbye can be sent.
    std::mem::forget(hub_b);
    crash.send(()).expect("node B waits for its crash");
    node_b.join().expect("node B thread");
    let crashed = std::time::Instant::now();
    eventually("node B's member stops counting", WAIT, || {
        hub_a.presence("room") == 1
    })
    .await;
    let gone_after = crashed.elapsed();
    // The documented bound: three heartbeats after the last report, plus the broker's latency
    // (a report in flight at the crash arrives late); one second of slack for a loaded machine.
    assert!(
        gone_after <= HEARTBEAT * 3 + Duration::from_secs(1),
        "took {gone_after:?}"
    );
    close_client(&mut a1).await;
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crossing_both_ways_with_presence_and_send_to() {
        super::crossing_both_ways_with_presence_and_send_to(BrokerKind::Redis).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_killed_mid_broadcast_and_restarted() {
        super::broker_killed_mid_broadcast_and_restarted(BrokerKind::Redis).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_that_dies_stops_counting_within_three_heartbeats() {
        super::a_node_that_dies_stops_counting_within_three_heartbeats(BrokerKind::Redis).await;
    }
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crossing_both_ways_with_presence_and_send_to() {
        super::crossing_both_ways_with_presence_and_send_to(BrokerKind::Nats).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_killed_mid_broadcast_and_restarted() {
        super::broker_killed_mid_broadcast_and_restarted(BrokerKind::Nats).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_that_dies_stops_counting_within_three_heartbeats() {
        super::a_node_that_dies_stops_counting_within_three_heartbeats(BrokerKind::Nats).await;
    }
}
