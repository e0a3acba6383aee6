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

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Redis,
    Nats,
}

/// A `redis-server` or `nats-server` process on a free loopback port, killed on drop. The
/// binaries come from Debian's `redis-server` and `nats-server` packages (`.ci/run` installs
/// them).
pub struct BrokerProcess {
    kind: BrokerKind,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl BrokerProcess {
    /// Starts one on a free port and waits until it says it is ready.
    pub async fn start(kind: BrokerKind) -> BrokerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut broker = BrokerProcess {
            kind,
            port,
            child: None,
        };
        broker.restart().await;
        broker
    }

    /// The URL a hub connects to.
    pub fn url(&self) -> String {
        match self.kind {
            BrokerKind::Redis => format!("redis://127.0.0.1:{}", self.port),
            BrokerKind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the broker");
        }
    }

    /// Starts the server (again) on the same port and waits for its "ready" line.
    pub async fn restart(&mut self) {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let port = self.port.to_string();
        let (program, args, ready): (&str, Vec<&str>, &str) = match self.kind {
            BrokerKind::Redis => (
                "redis-server",
                vec![
                    "--port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",
                ],
                "Ready to accept connections",
            ),
            BrokerKind::Nats => (
                "nats-server",
                vec!["-a", "127.0.0.1", "-p", &port],
                "Server is ready",
            ),
        };
        let mut child = tokio::process::Command::new(program)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {program} ({error}): install Debian's {program} package")
            });
        // Redis logs to stdout, NATS to stderr: watch both for the ready line, and keep
        // draining them afterwards so the pipes never fill.
        let (found, mut ready_rx) = mpsc::channel::<()>(2);
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        for output in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(stderr),
        ] {
            let found = found.clone();
            let ready = ready.to_owned();
            tokio::spawn(async move {
                let mut lines = BufReader::new(output).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains(&ready) {
                        let _ = found.try_send(());
                    }
                }
            });
        }
        tokio::time::timeout(crate::common::WAIT, ready_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{program} on port {port} not ready in time"))
            .expect("output watched");
        self.child = Some(child);
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most `limit`. For state that has
/// no event to wait on (a broker link's counters, presence reports from other nodes).
pub async fn eventually(
    what: &str,
    limit: std::time::Duration,
    mut condition: impl FnMut() -> bool,
) {
    let checking = async {
        while !condition() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(limit, checking)
        .await
        .unwrap_or_else(|_| panic!("not within {limit:?}: {what}"));
}
