//! Echoes every text and binary message unchanged, on any path (used for conformance tests).
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["ws"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread"] }
//! tracing-subscriber = { version = "0.3.19", features = ["env-filter"] }
//! ```
//!
//! ```text
//! cargo run --example echo                      # listens on 127.0.0.1:9001
//! cargo run --example ws_client --features client -- ws://127.0.0.1:9001/ws "echo me"
//! ```
//!
//! Another address: first argument or `ADDR`. Ctrl-C shuts down gracefully.

use wsgrpc::ws::{Config, Message, Server, SessionHandle, handler_fn};

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
    // Conformance suites send messages of up to 16 MiB; the defaults already allow that.
    let server = Server::bind(&addr).await?.with_config(Config::default());
    println!("listening on ws://{}/ws", server.local_addr());
    server
        .serve_with_shutdown(echo, wsgrpc::shutdown_signal())
        .await
}
