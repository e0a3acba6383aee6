//! A helloworld client: calls `SayHello` and prints the reply; `--stream` also runs both streaming
//! calls.
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and put this in
//! your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["grpc"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread"] }
//! futures = "0.3.31"
//! # the client channel (wsgrpc itself has no gRPC client stack)
//! tonic = { version = "0.14.2", default-features = false, features = ["channel"] }
//! ```
//!
//! Try it against `cargo run --example greeter_server --features grpc`:
//!
//! ```text
//! cargo run --example greeter_client --features grpc -- http://127.0.0.1:50051 world  # prints: Hello world
//! cargo run --example greeter_client --features grpc -- http://127.0.0.1:50051 world --stream
//! ```

use futures::StreamExt;
use wsgrpc::grpc::pb::{HelloRequest, greeter_client::GreeterClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut stream = false;
    let mut positional = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--stream" => stream = true,
            // Tolerate the separator when the binary is run directly rather than via `cargo run --`.
            "--" => {}
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let addr = positional
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let addr = if addr.contains("://") {
        addr
    } else {
        format!("http://{addr}")
    };
    let name = positional.next().unwrap_or_else(|| "world".to_owned());

    // wsgrpc has no client stack of its own: the channel is tonic's (its `channel` feature).
    let channel = tonic::transport::Endpoint::from_shared(addr)?
        .connect()
        .await?;
    let mut client = GreeterClient::new(channel);

    let reply = client
        .say_hello(HelloRequest { name: name.clone() })
        .await?;
    println!("{}", reply.into_inner().message);

    if stream {
        println!("-- SayHelloStreamReply");
        let mut replies = client
            .say_hello_stream_reply(HelloRequest { name: name.clone() })
            .await?
            .into_inner();
        while let Some(reply) = replies.message().await? {
            println!("{}", reply.message);
        }

        println!("-- SayHelloBidiStream");
        let names = futures::stream::iter(1..=3).map(move |i| HelloRequest {
            name: format!("{name} {i}"),
        });
        let mut replies = client.say_hello_bidi_stream(names).await?.into_inner();
        while let Some(reply) = replies.message().await? {
            println!("{}", reply.message);
        }
    }
    Ok(())
}
