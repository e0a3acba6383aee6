//! The reference design's gRPC server: `helloworld.Greeter` answering `Hello {name}`, with health
//! checks and reflection, shutting down gracefully on Ctrl-C.
//!
//! The Greeter is mounted like any service of your own: one `add_service` line, plus its
//! descriptors for reflection (`examples/todo_server.rs` does the same with its own proto).
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["grpc"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "net", "signal"] }
//! tracing-subscriber = { version = "0.3.19", features = ["env-filter"] }
//! ```
//!
//! Try it:
//!
//! ```text
//! cargo run --example greeter_server --features grpc  # 127.0.0.1:50051; or pass ADDR / set ADDR=
//! cargo run --example greeter_client --features grpc -- http://127.0.0.1:50051 world
//! grpcurl -plaintext -d '{"name":"world"}' 127.0.0.1:50051 helloworld.Greeter/SayHello
//! ```

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use wsgrpc::grpc::pb::{self, greeter_server::GreeterServer};
use wsgrpc::grpc::{GreeterService, GrpcServer};

const DEFAULT_ADDR: &str = "127.0.0.1:50051";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("ADDR").ok())
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    GrpcServer::builder()
        .add_service(GreeterServer::new(GreeterService::default()))
        .file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .serve(listener, shutdown)
        .await?;
    Ok(())
}
