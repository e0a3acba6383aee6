//! Typed request/response over WebSocket: a small calculator service that also pushes a clock
//! tick to every connection once a second.
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["json"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "net", "time"] }
//! serde = { version = "1.0", features = ["derive"] }
//! tracing-subscriber = { version = "0.3.19", features = ["env-filter"] }
//! ```
//!
//! ```text
//! cargo run --example rpc_server --features json       # listens on ws://127.0.0.1:9002/rpc
//! cargo run --example rpc_client --features json,client -- ws://127.0.0.1:9002/rpc 20 22
//! ```
//!
//! Another address: first argument or `ADDR`. Ctrl-C shuts down gracefully.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use wsgrpc::rpc::{RpcError, RpcHandler, RpcService, push};
use wsgrpc::ws::{Server, SessionHandle};

/// What clients can ask for (shared with `rpc_client` by copy; a real project would put it in a
/// crate both depend on).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    Add { a: i64, b: i64 },
    Divide { a: i64, b: i64 },
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    value: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Tick {
    seconds: u64,
}

struct Calculator;

impl RpcService for Calculator {
    type Request = Request;
    type Response = Answer;

    async fn call(&self, _session: &SessionHandle, request: Request) -> Result<Answer, RpcError> {
        let value = match request {
            Request::Add { a, b } => a.checked_add(b),
            Request::Divide { a, b } => a.checked_div(b),
        };
        value
            .map(|value| Answer { value })
            .ok_or_else(|| RpcError::new("arithmetic", "overflow or division by zero"))
    }

    async fn on_open(&self, session: &SessionHandle) -> wsgrpc::Result<()> {
        let session = session.clone();
        tokio::spawn(async move {
            let mut clock = tokio::time::interval(Duration::from_secs(1));
            for seconds in 0.. {
                clock.tick().await;
                if push(&session, &Tick { seconds }).await.is_err() {
                    break; // the connection is gone
                }
            }
        });
        Ok(())
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
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/rpc", listener.local_addr()?);
    Server::new(RpcHandler::new(Calculator))
        .serve(listener, wsgrpc::shutdown_signal())
        .await
}
