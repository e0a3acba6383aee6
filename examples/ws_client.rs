//! A WebSocket client: sends its arguments (or, without any, each line of stdin) as text messages
//! and prints every message it receives. It reconnects when the server goes away.
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["client"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "io-std", "io-util", "sync", "time"] }
//! ```
//!
//! ```text
//! cargo run --example ws_client --features client -- ws://127.0.0.1:8080/ws hello world  # prints Pong twice
//! cargo run --example ws_client --features client -- ws://127.0.0.1:9001/ws  # interactive, Ctrl-D ends
//! ```
//!
//! Interactive mode survives a server restart: start `cargo run --example echo`, connect, stop and
//! start the server again; lines typed meanwhile wait in the (bounded) queue and go out on the new
//! connection. With arguments it waits for as many replies as it sent (at most 5 s), then closes.
//! The URL may also come from `ADDR` (e.g. `ADDR=ws://127.0.0.1:9001/ws`).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use wsgrpc::client::{Client, ConnectionState, Reconnect};
use wsgrpc::ws::{CloseCode, Handler, Message, Session};

/// Prints what arrives and tells `main` about it.
struct Printer {
    received: mpsc::Sender<()>,
}

impl Handler for Printer {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        eprintln!("connected to {}", session.request().uri());
        Ok(())
    }

    async fn on_message(&self, _session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        match &message {
            Message::Text(text) => println!("{}", text.as_str()),
            Message::Binary(data) => println!("<{} bytes>", data.len()),
        }
        let _ = self.received.try_send(());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> wsgrpc::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("ADDR").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".to_owned());
    let messages: Vec<String> = args.collect();

    let (received, mut replies) = mpsc::channel(1024);
    let client = Client::builder(url)
        .reconnect(Reconnect::default().max_delay(Duration::from_secs(5)))
        .connect(Printer { received })
        .await?;

    if !messages.is_empty() {
        for message in &messages {
            client.send(message.as_str()).await?;
        }
        for _ in 0..messages.len() {
            if tokio::time::timeout(Duration::from_secs(5), replies.recv())
                .await
                .is_err()
            {
                eprintln!("no reply within 5 s");
                break;
            }
        }
        client.close(CloseCode::Normal, "done").await?;
        let _ = tokio::time::timeout(Duration::from_secs(2), client.closed()).await;
        return Ok(());
    }

    // Report reconnects on stderr while stdin lines are sent.
    let mut state = client.watch_state();
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let current = state.borrow_and_update().clone();
            if let ConnectionState::Reconnecting { attempt, delay } = current {
                eprintln!("disconnected; reconnect attempt {attempt} in {delay:?}");
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        client.send(line).await?;
    }
    client.close(CloseCode::Normal, "stdin closed").await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), client.closed()).await;
    Ok(())
}
