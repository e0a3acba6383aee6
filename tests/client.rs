//! The client over real sockets: the same handler on both sides, reconnect with backoff, the
//! disconnected-send policies, refusals, and wss:// against the TLS server.

#![cfg(feature = "client")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsgrpc::client::{Client, ConnectionState, Reconnect, WhileDisconnected};
use wsgrpc::ws::{CloseCode, Config, Handler, Message, Server, Session};

/// Answers `ack:<text>` to anything that is not itself an ack, and reports every message it gets.
/// Used on both ends of the same connection.
struct Acker {
    seen: mpsc::Sender<String>,
    opens: Arc<AtomicUsize>,
    greeting: Option<&'static str>,
}

impl Acker {
    fn new(greeting: Option<&'static str>) -> (Acker, mpsc::Receiver<String>, Arc<AtomicUsize>) {
        let (seen, receiver) = mpsc::channel(1024);
        let opens = Arc::new(AtomicUsize::new(0));
        (
            Acker {
                seen,
                opens: opens.clone(),
                greeting,
            },
            receiver,
            opens,
        )
    }
}

impl Handler for Acker {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        match self.greeting {
            Some(greeting) => session.send(greeting).await,
            None => Ok(()),
        }
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        let text = message.as_text().unwrap_or("<binary>").to_owned();
        let _ = self.seen.send(text.clone()).await;
        if !text.starts_with("ack:") {
            session.send(format!("ack:{text}")).await?;
        }
        Ok(())
    }
}

async fn next_seen(seen: &mut mpsc::Receiver<String>) -> String {
    tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("message in time")
        .expect("open")
}

async fn wait_state(client: &Client, want: impl Fn(&ConnectionState) -> bool) -> ConnectionState {
    let mut state = client.watch_state();
    let reached = tokio::time::timeout(WAIT, state.wait_for(|state| want(state)))
        .await
        .unwrap_or_else(|_| panic!("state never reached; stuck at {:?}", client.state()));
    reached.expect("client task alive").clone()
}

#[tokio::test]
async fn the_same_handler_type_runs_on_both_sides() {
    let (server_acker, mut server_seen, _) = Acker::new(None);
    let server = start(server_acker, Config::default()).await;
    let (client_acker, mut client_seen, client_opens) = Acker::new(Some("hello"));
    let client = Client::connect(server.url("/ws"), client_acker)
        .await
        .expect("connect");
    assert!(matches!(client.state(), ConnectionState::Connected { .. }));

    // on_open's greeting reaches the server, whose ack reaches the client's handler.
    assert_eq!(next_seen(&mut server_seen).await, "hello");
    assert_eq!(client_opens.load(Ordering::SeqCst), 1);
    assert_eq!(next_seen(&mut client_seen).await, "ack:hello");
    // The handle sends from outside the handler.
    client.send("from a task").await.expect("send");
    assert_eq!(next_seen(&mut server_seen).await, "from a task");
    assert_eq!(next_seen(&mut client_seen).await, "ack:from a task");

    client
        .close(CloseCode::Normal, "done")
        .await
        .expect("close");
    let reason = tokio::time::timeout(WAIT, client.closed())
        .await
        .expect("closed in time");
    assert_eq!(reason.expect("a reason").code, CloseCode::Normal);
    assert!(client.send("too late").await.is_err());
    server.wait_connections(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_server_restarts_and_reruns_on_open() {
    let (server_acker, mut server_seen, _) = Acker::new(None);
    let server = start(server_acker, Config::default()).await;
    let addr = server.addr;
    let (client_acker, mut client_seen, opens) = Acker::new(Some("subscribe"));
    let policy = Reconnect::default()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(100));
    let client = Client::builder(server.url("/ws"))
        .reconnect(policy)
        .connect(client_acker)
        .await
        .expect("connect");
    assert_eq!(next_seen(&mut server_seen).await, "subscribe");
    assert_eq!(next_seen(&mut client_seen).await, "ack:subscribe");

    // Stop the server: the client sees 1001 and starts reconnecting (into refused connections).
    server.handle.shutdown();
    tokio::time::timeout(WAIT, server.task)
        .await
        .expect("stopped")
        .expect("task")
        .expect("ok");
    wait_state(&client, |state| {
        matches!(state, ConnectionState::Reconnecting { .. })
    })
    .await;
    // Sent while disconnected: buffered, delivered after the reconnect.
    client.send("while away").await.expect("buffered");

    // A new server on the same address.
    let (new_acker, mut new_seen, _) = Acker::new(None);
    let listener = TcpListener::bind(addr).await.expect("rebind the same port");
    let (restarted_handle, _task) = spawn_server(Server::new(new_acker), listener);
    wait_state(&client, |state| {
        matches!(state, ConnectionState::Connected { .. })
    })
    .await;

    let mut received = vec![
        next_seen(&mut new_seen).await,
        next_seen(&mut new_seen).await,
    ];
    received.sort();
    assert_eq!(
        received,
        ["subscribe", "while away"],
        "subscription restored, buffer replayed"
    );
    assert_eq!(
        opens.load(Ordering::SeqCst),
        2,
        "on_open ran once per connection"
    );
    client.send("after").await.expect("send");
    loop {
        if next_seen(&mut client_seen).await == "ack:after" {
            break;
        }
    }
    restarted_handle.shutdown();
}

#[tokio::test]
async fn fail_policy_refuses_sends_while_disconnected() {
    let (acker, _seen, _) = Acker::new(None);
    let server = start(acker, Config::default()).await;
    let policy = Reconnect::default().initial_delay(Duration::from_secs(30));
    let client = Client::builder(server.url("/ws"))
        .reconnect(policy)
        .while_disconnected(WhileDisconnected::Fail)
        .connect(Acker::new(None).0)
        .await
        .expect("connect");
    client
        .send("connected")
        .await
        .expect("send while connected");
    server.handle.shutdown();
    wait_state(&client, |state| {
        matches!(state, ConnectionState::Reconnecting { .. })
    })
    .await;
    assert!(matches!(
        client.send("now").await,
        Err(wsgrpc::Error::NotConnected)
    ));
    assert!(matches!(
        client.try_send("now"),
        Err(wsgrpc::Error::NotConnected)
    ));
}

#[tokio::test]
async fn backoff_waits_grow_within_bounds_and_attempts_are_capped() {
    let (acker, _seen, _) = Acker::new(None);
    let server = start(acker, Config::default()).await;
    let policy = Reconnect::default()
        .initial_delay(Duration::from_millis(40))
        .multiplier(2.0)
        .max_delay(Duration::from_millis(120))
        .max_attempts(Some(4));
    let client = Client::builder(server.url("/ws"))
        .reconnect(policy.clone())
        .connect(Acker::new(None).0)
        .await
        .expect("connect");
    server.handle.shutdown();

    // Watch every state the client goes through until it gives up, with when it was seen.
    let mut states = client.watch_state();
    let mut attempts = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            states.changed().await.expect("client alive");
            let state = states.borrow_and_update().clone();
            match state {
                ConnectionState::Reconnecting { attempt, delay } => {
                    attempts.push((attempt, delay, tokio::time::Instant::now()));
                }
                ConnectionState::Closed { .. } => return,
                _ => {}
            }
        }
    })
    .await
    .expect("client gives up in time");

    let numbers: Vec<u32> = attempts.iter().map(|(attempt, ..)| *attempt).collect();
    assert_eq!(numbers, [1, 2, 3, 4], "exactly max_attempts attempts");
    // backon computes the waits in f32 seconds: a wait may pass its bound by far less than 1 µs.
    let slack = Duration::from_micros(1);
    for (attempt, delay, _) in &attempts {
        let nominal = policy.nominal_delay(*attempt);
        assert!(
            *delay >= nominal / 2 && *delay <= nominal + slack,
            "attempt {attempt}: {delay:?}"
        );
        assert!(
            *delay <= Duration::from_millis(120) + slack,
            "never above max_delay"
        );
    }
    // Each announced wait was really waited before the next attempt was announced.
    for pair in attempts.windows(2) {
        let (_, waited, announced) = pair[0];
        let (_, _, next_announced) = pair[1];
        assert!(
            next_announced - announced >= waited,
            "retried before its backoff"
        );
    }
    assert!(matches!(client.state(), ConnectionState::Closed { .. }));
}

#[tokio::test]
async fn refusals_and_bad_urls_are_clear_errors() {
    struct Refuse;
    impl Handler for Refuse {
        async fn on_upgrade(
            &self,
            _upgrade: &mut wsgrpc::ws::Upgrade,
        ) -> Result<(), wsgrpc::ws::Rejection> {
            Err(wsgrpc::ws::Rejection::new(
                http::StatusCode::FORBIDDEN,
                "no\n",
            ))
        }
    }
    let server = start(Refuse, Config::default()).await;
    match Client::connect(server.url("/ws"), Acker::new(None).0).await {
        Err(wsgrpc::Error::Refused { status }) => assert_eq!(status, http::StatusCode::FORBIDDEN),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        Client::connect("http://127.0.0.1:1/ws", Acker::new(None).0).await,
        Err(wsgrpc::Error::InvalidUrl(_))
    ));
    // A listener that accepts but never answers the upgrade: the connect timeout fires.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/ws", silent.local_addr().expect("addr"));
    let attempt = Client::builder(url)
        .connect_timeout(Duration::from_millis(200))
        .connect(Acker::new(None).0)
        .await;
    assert!(
        matches!(attempt, Err(wsgrpc::Error::ConnectTimeout(_))),
        "{attempt:?}"
    );
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection_normally() {
    let (probe, mut closes) = Probe::new();
    let server = start(probe, Config::default()).await;
    let client = Client::connect(server.url("/ws"), Acker::new(None).0)
        .await
        .expect("connect");
    let second_handle = client.clone();
    drop(client);
    server.wait_connections(1).await;
    drop(second_handle);
    let reason = next_close(&mut closes).await;
    assert_eq!(reason.code, CloseCode::Normal);
    server.wait_connections(0).await;
}
