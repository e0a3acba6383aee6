//! The reference design's WebSocket endpoint: log every message on `/ws`, answer each with `Pong`.
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["ws"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "net"] }
//! tracing = "0.1.41"
//! tracing-subscriber = { version = "0.3.19", features = ["env-filter"] }
//! ```
//!
//! ```text
//! cargo run --example ping_pong                 # listens on 127.0.0.1:8080
//! cargo run --example ws_client --features client -- ws://127.0.0.1:8080/ws hello
//! ```
//!
//! Another address: `cargo run --example ping_pong -- 127.0.0.1:9000` or `ADDR=127.0.0.1:9000`.
//! Ctrl-C closes every connection with 1001 and exits.

use tokio::net::TcpListener;
use wsgrpc::http::StatusCode;
use wsgrpc::ws::{Handler, Message, Rejection, Server, Session, Upgrade};

struct PingPong;

impl Handler for PingPong {
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        if upgrade.path() == "/ws" {
            Ok(())
        } else {
            Err(Rejection::new(StatusCode::NOT_FOUND, "try /ws\n"))
        }
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        match &message {
            Message::Text(text) => {
                tracing::info!(id = %session.id(), "received text: {}", text.as_str())
            }
            Message::Binary(data) => {
                tracing::info!(id = %session.id(), "received {} bytes", data.len())
            }
        }
        session.send(Message::from_static("Pong")).await
    }
}

#[tokio::main]
async fn main() -> wsgrpc::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());

    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/ws", listener.local_addr()?);
    Server::new(PingPong)
        .serve(listener, wsgrpc::shutdown_signal())
        .await
}
