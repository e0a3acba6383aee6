//! Echoes every text and binary message unchanged, on any path (used for conformance tests).
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["ws"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "net"] }
//! tracing-subscriber = { version = "0.3.19", features = ["env-filter"] }
//! ```
//!
//! ```text
//! cargo run --example echo                      # listens on 127.0.0.1:9001
//! cargo run --example ws_client --features client -- ws://127.0.0.1:9001/ws "echo me"
//! ```
//!
//! Another address: first argument or `ADDR`. Ctrl-C shuts down gracefully.

use tokio::net::TcpListener;
use wsgrpc::ws::{Config, DeflateConfig, Message, Server, SessionHandle, handler_fn};

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
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());

    let echo = handler_fn(|session: SessionHandle, message: Message| async move {
        session.send(message).await
    });
    // Conformance suites send messages of up to 16 MiB; the defaults already allow that. Their
    // clients are not pages of this server and may send an `Origin` of their own, and an echo
    // server holds nothing a cross-site page could abuse (no cookies, no per-user state): so this
    // server opts out of the same-origin check, visibly.
    //
    // permessage-deflate is on by default; `WS_DEFLATE=off` turns it off and
    // `WS_DEFLATE_THRESHOLD=<bytes>` sets the size below which messages go out uncompressed
    // (default 64), for conformance runs that want every message compressed.
    let mut deflate = DeflateConfig::default();
    if std::env::var("WS_DEFLATE").is_ok_and(|value| value == "off") {
        deflate = DeflateConfig::disabled();
    }
    if let Some(threshold) = std::env::var("WS_DEFLATE_THRESHOLD")
        .ok()
        .and_then(|value| value.parse().ok())
    {
        deflate = deflate.threshold(threshold);
    }
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/ws", listener.local_addr()?);
    Server::new(echo)
        .config(Config::default().allow_any_origin().deflate(deflate))
        .serve(listener, wsgrpc::shutdown_signal())
        .await
}
