//! Calls the `rpc_server` example: adds and divides two numbers concurrently, prints the answers
//! and the clock ticks the server pushes meanwhile.
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["json", "client"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "time"] }
//! serde = { version = "1.0", features = ["derive"] }
//! ```
//!
//! ```text
//! cargo run --example rpc_server --features json
//! cargo run --example rpc_client --features json,client -- ws://127.0.0.1:9002/rpc 20 22
//! # 20 + 22 = 42
//! # 20 / 22 = 0
//! ```
//!
//! The URL may also come from `ADDR`; the numbers default to 6 and 7.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wsgrpc::rpc::RpcClient;
use wsgrpc::ws::CloseCode;

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

#[tokio::main]
async fn main() -> wsgrpc::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("ADDR").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:9002/rpc".to_owned());
    let a: i64 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(6);
    let b: i64 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(7);

    let (calls, mut ticks) = RpcClient::<Request, Answer>::builder::<Tick>(url)
        .call_timeout(Duration::from_secs(5))
        .connect()
        .await?;

    // Both calls are in flight on the one connection at the same time.
    let (add, divide) = (Request::Add { a, b }, Request::Divide { a, b });
    let (sum, quotient) = tokio::join!(calls.call(&add), calls.call(&divide));
    match sum {
        Ok(answer) => println!("{a} + {b} = {}", answer.value),
        Err(wsgrpc::Error::Rpc(error)) => println!("{a} + {b} failed: {error}"),
        Err(error) => println!("{a} + {b} failed: {error}"),
    }
    match quotient {
        Ok(answer) => println!("{a} / {b} = {}", answer.value),
        // The service's own error (code and message), e.g. for a division by zero.
        Err(wsgrpc::Error::Rpc(error)) => println!("{a} / {b} failed: {error}"),
        Err(error) => println!("{a} / {b} failed: {error}"),
    }
    if let Ok(Some(tick)) = tokio::time::timeout(Duration::from_millis(1500), ticks.recv()).await {
        println!("server clock: {} s", tick.seconds);
    }
    calls.client().close(CloseCode::Normal, "done").await
}
