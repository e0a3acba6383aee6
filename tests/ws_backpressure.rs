//! Bounded memory under a slow reader, batched writes, and `serve_connection` on any stream.

#![cfg(feature = "ws")]

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::ws::{
    Config, Handler, Message, Session, SessionHandle, Upgrade, handler_fn, serve_connection,
};

const CHUNK: usize = 64 * 1024;
const TOTAL_CHUNKS: usize = 2_000; // 125 MiB if nothing pushed back

/// On open, a producer task pushes 64 KiB messages as fast as `send` lets it, and reports how many
/// it got through before a send stayed blocked for a while.
struct Firehose {
    stalled_at: tokio::sync::mpsc::Sender<usize>,
    sent: Arc<AtomicUsize>,
}

impl Handler for Firehose {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        let handle = session.handle();
        let stalled_at = self.stalled_at.clone();
        let sent = self.sent.clone();
        tokio::spawn(async move {
            let payload = bytes::Bytes::from(vec![0xAB; CHUNK]);
            let mut reported = false;
            for i in 0..TOTAL_CHUNKS {
                let send = handle.send(Message::Binary(payload.clone()));
                // A send that waits this long means the queue is full and the socket is not
                // draining: the backpressure we are testing for.
                match tokio::time::timeout(Duration::from_millis(500), send).await {
                    Ok(result) => result.expect("connection open"),
                    Err(_) => {
                        if !reported {
                            let _ = stalled_at.send(i).await;
                            reported = true;
                        }
                        handle
                            .send(Message::Binary(payload.clone()))
                            .await
                            .expect("open");
                    }
                }
                sent.store(i + 1, Ordering::Relaxed);
            }
        });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_stalls_the_sender_instead_of_growing_memory() {
    let (stalled_at, mut stalls) = tokio::sync::mpsc::channel(1);
    let sent = Arc::new(AtomicUsize::new(0));
    let queue = 16;
    let firehose = Firehose {
        stalled_at,
        sent: sent.clone(),
    };
    let server = start(firehose, Config::default().outgoing_queue(queue)).await;
    let mut client = connect(&server.url("/ws")).await;

    // The client reads nothing until the producer reports it is stuck.
    let stalled = tokio::time::timeout(WAIT, stalls.recv())
        .await
        .expect("the sender stalls while nobody reads")
        .expect("report");
    // What got through is at most the queue plus what the kernel's socket buffers and
    // tungstenite's write buffer absorb (a few MiB on loopback), far from all 125 MiB.
    let absorbed_mib = (stalled * CHUNK) >> 20;
    assert!(
        stalled < TOTAL_CHUNKS / 4,
        "sender got {stalled} chunks ({absorbed_mib} MiB) through"
    );
    assert!(
        stalled >= queue,
        "the queue itself should have filled first ({stalled})"
    );

    // Reading resumes the flow and every chunk arrives intact, in order.
    let mut received = 0;
    while received < TOTAL_CHUNKS {
        match next_data(&mut client).await {
            WsMessage::Binary(data) => {
                assert_eq!(data.len(), CHUNK);
                assert!(data.iter().all(|byte| *byte == 0xAB));
                received += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sent.load(Ordering::Relaxed), TOTAL_CHUNKS);
}

#[tokio::test]
async fn try_send_reports_a_full_queue() {
    struct Burst;
    impl Handler for Burst {
        async fn on_message(&self, session: &mut Session, _message: Message) -> wsgrpc::Result<()> {
            // The connection drains the queue only when this hook yields, so a burst of
            // `try_send`s beyond the bound must fail rather than grow the queue.
            let mut accepted = 0;
            let mut full = 0;
            for _ in 0..10 {
                match session.try_send("x") {
                    Ok(()) => accepted += 1,
                    Err(wsgrpc::Error::QueueFull) => full += 1,
                    Err(other) => return Err(other),
                }
            }
            session
                .send(format!("accepted {accepted}, full {full}"))
                .await
        }
    }
    let server = start(Burst, Config::default().outgoing_queue(4)).await;
    let mut client = connect(&server.url("/ws")).await;
    client.send(WsMessage::text("go")).await.expect("send");
    let mut texts = Vec::new();
    while texts.len() < 5 {
        if let WsMessage::Text(text) = next_data(&mut client).await {
            texts.push(text.to_string());
        }
    }
    assert_eq!(texts[..4], ["x", "x", "x", "x"]);
    assert_eq!(texts[4], "accepted 4, full 6");
}

/// A stream that counts the writes and flushes reaching it.
struct Counting<S> {
    inner: S,
    writes: Arc<AtomicUsize>,
    flushes: Arc<AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads the client's request head off a server-side stream and validates it as an upgrade, the
/// part hyper or axum would do before calling `serve_connection`.
async fn accept_by_hand<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) -> Upgrade {
    let mut reader = BufReader::new(io);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("request line");
    let path = line.split_whitespace().nth(1).expect("path").to_owned();
    let mut request = http::Request::get(path);
    loop {
        line.clear();
        reader.read_line(&mut line).await.expect("header");
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        request = request.header(name.trim(), value.trim());
    }
    assert!(
        reader.buffer().is_empty(),
        "the client waits for the 101 before sending frames"
    );
    let upgrade = Upgrade::from_request(request.body(()).expect("request"), None).expect("valid");
    let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in upgrade.response().headers() {
        head.push_str(&format!("{}: {}\r\n", name, value.to_str().expect("ascii")));
    }
    head.push_str("\r\n");
    reader
        .into_inner()
        .write_all(head.as_bytes())
        .await
        .expect("write 101");
    upgrade
}

#[tokio::test]
async fn serve_connection_runs_a_handler_on_any_stream_and_batches_writes() {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let flushes = Arc::new(AtomicUsize::new(0));
    let mut server_io = Counting {
        inner: server_io,
        writes: writes.clone(),
        flushes: flushes.clone(),
    };

    // On one message, queue 100 replies at once.
    let burst = handler_fn(|session: SessionHandle, message: Message| async move {
        for i in 0..100 {
            session
                .send(format!("{} #{i}", message.as_text().unwrap_or("?")))
                .await?;
        }
        Ok(())
    });
    let server = tokio::spawn(async move {
        let upgrade = accept_by_hand(&mut server_io).await;
        let writes_before = server_io.writes.load(Ordering::Relaxed);
        let reason = serve_connection(server_io, upgrade, &burst, &Config::default()).await;
        (reason, writes_before)
    });

    let (mut client, _) = tokio_tungstenite::client_async("ws://in-memory/ws", client_io)
        .await
        .expect("handshake over the duplex stream");
    client.send(WsMessage::text("burst")).await.expect("send");
    for i in 0..100 {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("in time");
        match message {
            Some(Ok(WsMessage::Text(text))) => assert_eq!(text.as_str(), format!("burst #{i}")),
            other => panic!("unexpected {other:?}"),
        }
    }
    let normal = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "done".into(),
    };
    client.close(Some(normal)).await.expect("close");
    while tokio::time::timeout(WAIT, client.next())
        .await
        .expect("in time")
        .is_some()
    {}

    let (reason, writes_before) = server.await.expect("server task");
    assert_eq!(reason.code_number(), 1000);
    assert_eq!(reason.reason.as_str(), "done");
    // 100 replies plus the close echo went out in a handful of writes, not one per message.
    let frame_writes = writes.load(Ordering::Relaxed) - writes_before;
    assert!(
        frame_writes <= 4,
        "{frame_writes} writes for 100 queued messages"
    );
    assert!(
        flushes.load(Ordering::Relaxed) <= 6,
        "{} flushes",
        flushes.load(Ordering::Relaxed)
    );
}
