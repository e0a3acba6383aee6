//! A chat server: rooms by path, nicknames, join and leave notices, JSON messages. It puts the
//! composition pieces together: a router, upgrade guards, layers, typed messages and a hub.
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["json", "rate-limit"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "net"] }
//! serde = { version = "1.0", features = ["derive"] }
//! tracing-subscriber = { version = "0.3.19", features = ["env-filter"] }
//! ```
//!
//! ```text
//! cargo run --example chat --features json  # listens on 127.0.0.1:8090
//! # terminal 2:
//! cargo run --example ws_client --features client -- "ws://127.0.0.1:8090/rooms/lobby?nick=ann"
//! # terminal 3:
//! cargo run --example ws_client --features client -- "ws://127.0.0.1:8090/rooms/lobby?nick=bob"
//! # then type lines like this in either client; both print it:
//! {"text":"hello, lobby"}
//! # a server-wide announcement (the token is CHAT_TOKEN, default "letmein"):
//! cargo run --example ws_client --features client -- "ws://127.0.0.1:8090/announce?access_token=letmein" '{"text":"restart at 5"}'
//! ```
//!
//! Another address: first argument or `ADDR`. Ctrl-C shuts down gracefully (close 1001).
//!
//! Across processes: `--broker URL` (or `BROKER`) links the hub to Redis or NATS, so chat servers
//! on several ports (or machines) share their rooms, and `present` counts every node. It needs
//! wsgrpc's `redis` or `nats` feature (add it to the `features` above); without it, the flag
//! stops the server with an error naming the feature. Without the flag, rooms live in this
//! process.
//!
//! ```text
//! redis-server --port 6379 &            # or: nats-server -p 4222 &
//! cargo run --example chat --features json,redis -- 127.0.0.1:8090 --broker redis://127.0.0.1:6379
//! cargo run --example chat --features json,redis -- 127.0.0.1:8091 --broker redis://127.0.0.1:6379
//! cargo run --example ws_client --features client -- "ws://127.0.0.1:8090/rooms/lobby?nick=ann"
//! cargo run --example ws_client --features client -- "ws://127.0.0.1:8091/rooms/lobby?nick=bob"
//! # bob's welcome says "present":2; a line typed by either reaches the other
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use wsgrpc::http::StatusCode;
use wsgrpc::ws::guard::{AuthLayer, ProtocolLayer};
use wsgrpc::ws::layer::{RateLimitLayer, TimeoutLayer, TraceLayer};
use wsgrpc::ws::{
    CloseReason, HandlerBuilder, Hub, JsonLayer, PathParams, Rejection, Router, Server,
    TypedHandler, TypedSession, Upgrade, to_message,
};

/// What clients send: `{"text":"..."}`.
#[derive(Deserialize)]
struct Say {
    text: String,
}

/// What the server sends, tagged by `type`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    /// To a newcomer: where it is and who else is there.
    Welcome {
        room: String,
        nick: String,
        present: usize,
    },
    Joined {
        room: String,
        nick: String,
        present: usize,
    },
    Left {
        room: String,
        nick: String,
        present: usize,
    },
    Message {
        room: String,
        nick: String,
        text: String,
    },
    Announcement {
        text: String,
    },
    /// To an announcer: how many connections of this node the announcement reached (other
    /// nodes deliver it to theirs).
    Announced {
        delivered: usize,
    },
}

/// The upgrade request's query: `?nick=ann` (optional).
#[derive(Deserialize)]
struct Join {
    nick: Option<String>,
}

/// The nickname chosen at upgrade time; kept in the session's extensions until `on_open`.
struct Nick(String);

/// Who a chat connection is; kept in its session's extensions.
struct Member {
    room: String,
    nick: String,
}

struct Chat {
    hub: Hub,
}

impl Chat {
    /// Encodes once, then every member of the room, on every node, shares the bytes. Waits while
    /// a member's queue is full (up to the hub's slow-consumer grace), so one client pasting
    /// hundreds of lines is paced by the room instead of overflowing it.
    async fn tell_room(&self, room: &str, event: &Event) -> wsgrpc::Result<()> {
        self.hub.publish_to(room, to_message(event)?).await;
        Ok(())
    }
}

impl TypedHandler for Chat {
    type In = Say;
    type Out = Event;

    /// Reads the nickname from the query before the `101`: a query that does not fit `Join`
    /// (e.g. `?nick=a&nick=b`) gets `400 Bad Request` naming the problem.
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        let join: Join = upgrade.query_as()?;
        if let Some(nick) = join.nick.as_deref().and_then(clean_nick) {
            upgrade.extensions_mut().insert(Nick(nick));
        }
        Ok(())
    }

    async fn on_open(&self, mut session: TypedSession<'_, Event>) -> wsgrpc::Result<()> {
        let room = session
            .extensions()
            .get::<PathParams>()
            .and_then(|params| params.get("room"))
            .unwrap_or("lobby")
            .to_owned();
        let nick = match session.extensions_mut().remove::<Nick>() {
            Some(Nick(nick)) => nick,
            None => format!("guest-{}", session.id()),
        };
        // Every node's members (as their last presence reports say), and this newcomer.
        let present = self.hub.presence(&room) + 1;
        self.tell_room(
            &room,
            &Event::Joined {
                room: room.clone(),
                nick: nick.clone(),
                present,
            },
        )
        .await?;
        self.hub.join(&session.handle(), &room);
        session
            .send(&Event::Welcome {
                room: room.clone(),
                nick: nick.clone(),
                present,
            })
            .await?;
        session.extensions_mut().insert(Member { room, nick });
        Ok(())
    }

    async fn on_message(&self, session: TypedSession<'_, Event>, say: Say) -> wsgrpc::Result<()> {
        let Some(member) = session.extensions().get::<Member>() else {
            return Ok(());
        };
        self.tell_room(
            &member.room,
            &Event::Message {
                room: member.room.clone(),
                nick: member.nick.clone(),
                text: say.text,
            },
        )
        .await
    }

    async fn on_close(&self, mut session: TypedSession<'_, Event>, _reason: CloseReason) {
        self.hub.remove(session.id());
        if let Some(Member { room, nick }) = session.extensions_mut().remove::<Member>() {
            let present = self.hub.presence(&room);
            let left = Event::Left {
                room: room.clone(),
                nick,
                present,
            };
            let _ = self.tell_room(&room, &left).await;
        }
    }
}

/// A nickname made of the letters, digits, `-`, `_` and `.` of `raw`, at most 24 of them.
fn clean_nick(raw: &str) -> Option<String> {
    let nick: String = raw
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(24)
        .collect();
    (!nick.is_empty()).then_some(nick)
}

/// Broadcasts what an authenticated client sends to every chat connection.
struct Announce {
    hub: Hub,
}

impl TypedHandler for Announce {
    type In = Say;
    type Out = Event;

    async fn on_message(&self, session: TypedSession<'_, Event>, say: Say) -> wsgrpc::Result<()> {
        let delivery = self
            .hub
            .publish(to_message(&Event::Announcement { text: say.text })?)
            .await;
        session
            .send(&Event::Announced {
                delivered: delivery.delivered,
            })
            .await
    }
}

#[tokio::main]
async fn main() -> wsgrpc::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (addr, broker) = arguments()?;
    let token = std::env::var("CHAT_TOKEN").unwrap_or_else(|_| "letmein".to_owned());

    // In this process, or on every node that uses the same broker.
    let hub = match &broker {
        Some(url) => Hub::builder().broker(url).build()?,
        None => Hub::new(),
    };
    let rooms = HandlerBuilder::new()
        // Optional: clients that offer `chat.v1` get it confirmed; ws_client offers none.
        .layer(ProtocolLayer::new(["chat.v1"]))
        .layer(RateLimitLayer::new(5, Duration::from_secs(1)).burst(10))
        .layer(TimeoutLayer::new(Duration::from_secs(10)))
        .layer(JsonLayer::new())
        .handler(Chat { hub: hub.clone() });
    let announce = HandlerBuilder::new()
        .layer(
            AuthLayer::new(move |offered: String| {
                let valid = offered == token;
                async move {
                    if valid {
                        Ok(())
                    } else {
                        Err(Rejection::new(StatusCode::FORBIDDEN, "wrong token\n"))
                    }
                }
            })
            .query_param("access_token"),
        )
        .layer(JsonLayer::new())
        .handler(Announce { hub });
    let router = Router::new()
        .route("/rooms/{room}", rooms)
        .route("/announce", announce);
    // Web pages from other sites may not connect in their visitors' name: the server's default
    // origin policy (`Config::origin_policy`) refuses them with 403 before any hook runs.
    let handler = HandlerBuilder::new()
        .layer(TraceLayer::new())
        .handler(router);

    let listener = TcpListener::bind(&addr).await?;
    println!(
        "chat on ws://{}/rooms/{{room}}?nick=NAME{}",
        listener.local_addr()?,
        broker.map_or_else(String::new, |url| format!(", rooms shared through {url}"))
    );
    Server::new(handler)
        .serve(listener, wsgrpc::shutdown_signal())
        .await
}

/// `[ADDR] [--broker URL]`, with `ADDR` and `BROKER` from the environment as fallbacks.
fn arguments() -> wsgrpc::Result<(String, Option<String>)> {
    let mut addr = None;
    let mut broker = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--broker" {
            let url = args.next().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "--broker needs a URL: redis://host:port or nats://host:port",
                )
            })?;
            broker = Some(url);
        } else if let Some(url) = arg.strip_prefix("--broker=") {
            broker = Some(url.to_owned());
        } else {
            addr = Some(arg);
        }
    }
    let addr = addr
        .or_else(|| std::env::var("ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    Ok((addr, broker.or_else(|| std::env::var("BROKER").ok())))
}
