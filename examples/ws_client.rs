//! A small WebSocket client: sends its arguments (or, without any, each line of stdin) as text
//! messages and prints every message it receives.
//!
//! ```text
//! cargo run --example ws_client -- ws://127.0.0.1:8080/ws hello world   # prints Pong twice
//! cargo run --example ws_client -- ws://127.0.0.1:9001/ws               # interactive, Ctrl-D ends
//! ```
//!
//! With arguments it waits for as many replies as it sent messages (at most 5 s), then closes.
//! The URL may also come from `ADDR` (e.g. `ADDR=ws://127.0.0.1:9001/ws`).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("ADDR").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".to_owned());
    let messages: Vec<String> = args.collect();

    let (socket, _response) = tokio_tungstenite::connect_async(url.as_str()).await?;
    eprintln!("connected to {url}");
    let (mut sink, mut stream) = socket.split();

    if !messages.is_empty() {
        for message in &messages {
            sink.send(Message::text(message.as_str())).await?;
        }
        let mut replies = 0;
        while replies < messages.len() {
            match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                Ok(Some(Ok(message))) => replies += usize::from(print_message(message)),
                Ok(Some(Err(error))) => return Err(error.into()),
                Ok(None) => break,
                Err(_) => {
                    eprintln!("no reply within 5 s");
                    break;
                }
            }
        }
        sink.send(Message::Close(None)).await?;
        // Wait (briefly) for the server's close frame so the close handshake completes.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while stream.next().await.is_some() {}
        })
        .await;
        return Ok(());
    }

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => sink.send(Message::text(line)).await?,
                None => {
                    sink.send(Message::Close(None)).await?;
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(message)) = stream.next().await {
                            print_message(message);
                        }
                    })
                    .await;
                    return Ok(());
                }
            },
            message = stream.next() => match message {
                Some(Ok(message)) => {
                    print_message(message);
                }
                Some(Err(error)) => return Err(error.into()),
                None => return Ok(()),
            },
        }
    }
}

/// Prints a received message; returns whether it was a data message.
fn print_message(message: Message) -> bool {
    match message {
        Message::Text(text) => println!("{}", text.as_str()),
        Message::Binary(data) => println!("<{} bytes>", data.len()),
        Message::Close(Some(frame)) => {
            eprintln!(
                "closed by server: {} {}",
                u16::from(frame.code),
                frame.reason.as_str()
            );
            return false;
        }
        _ => return false,
    }
    true
}
