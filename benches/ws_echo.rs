//! WebSocket echo benchmark: wsgrpc against hand-written baselines, measured in the same run.
//!
//! `cargo bench --bench ws_echo` runs every server in its own child process pinned to core 1 while
//! the load generator runs here on core 0, so the two never compete for a core. For each cell it
//! reports throughput and the **server's CPU time per message** (from /proc, all threads), the
//! steadier figure on a shared machine, plus the ratio against the baselines:
//!
//! - `wsgrpc`: `Server` with an echo `Handler` and the default `Config`;
//! - `naive`: tokio-tungstenite written the common way, `ws.send(msg).await` per message;
//! - `tuned`: the best hand-written tokio-tungstenite loop (split reader/writer, `feed`, flush only
//!   when nothing more is queued, TCP_NODELAY);
//! - `tt-echo`: tokio-tungstenite's own `examples/echo-server.rs` as its repository ships it:
//!   `split()` and `StreamExt::forward` on `#[tokio::main]`'s multi-threaded runtime (every worker
//!   on the server core), no TCP_NODELAY;
//! - `wsgrpc-mt`: `wsgrpc` on that same multi-threaded runtime, so the two differ only in the
//!   library;
//! - `fastws`: fastwebsockets' echo server loop;
//! - `raw`: a plain TCP echo of length-prefixed frames, the physical floor.
//!
//! The load generator speaks WebSocket by hand (fixed-key masking, no allocation per frame) and
//! checks every echoed payload byte for byte.
//!
//! Environment: `BENCH_SECONDS` (measurement window per cell, default 2), `BENCH_ROUNDS` (rounds per
//! cell, median reported, default 3), `BENCH_IDLE` (connections in the idle scenario, default
//! 10000), `BENCH_ONLY` (comma-separated scenario names), `BENCH_SERVERS` (comma-separated server
//! names besides `wsgrpc`, e.g. `tt-echo` to profile a pair).

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures::{SinkExt, StreamExt};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const SERVERS: [(&str, &str); 7] = [
    ("wsgrpc", "wsgrpc"),
    ("wsgrpc-mt", "wsgrpc_mt"),
    ("naive", "naive"),
    ("tuned", "tuned"),
    ("tt-echo", "tt_echo_mt"),
    ("fastws", "fastws"),
    ("raw", "raw"),
];

fn main() {
    dispatch(run_server, run_benchmarks);
}

// ---------------------------------------------------------------------------------------------
// Servers (child processes)
// ---------------------------------------------------------------------------------------------

fn run_server(kind: &str) {
    // `_mt`: the same server on a multi-threaded runtime (as `#[tokio::main]` builds it).
    let (kind, multi_thread) = match kind.strip_suffix("_mt") {
        Some(kind) => (kind, true),
        None => (kind, false),
    };
    let (runtime, _) = if multi_thread {
        pinned_multi_thread_runtime(SERVER_CORE)
    } else {
        pinned_runtime(SERVER_CORE)
    };
    let region_start = Arc::new(std::sync::Mutex::new(Region::new(GLOBAL)));
    serve_commands({
        let region = region_start.clone();
        move |command| match command {
            "mark" => {
                *region.lock().expect("lock") = Region::new(GLOBAL);
                "ok".to_owned()
            }
            "allocs" => {
                let change = region.lock().expect("lock").change();
                format!("{} {}", change.allocations, change.bytes_allocated)
            }
            _ => "unknown".to_owned(),
        }
    });
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("READY {}", listener.local_addr().expect("addr"));
        match kind {
            "wsgrpc" => serve_wsgrpc(listener).await,
            "hub" => serve_hub(listener).await,
            "naive" => serve_accept_loop(listener, naive_connection).await,
            "tuned" => serve_accept_loop(listener, tuned_connection).await,
            "tt_echo" => serve_accept_loop(listener, tt_echo_connection).await,
            "tt_broadcast" => serve_tt_broadcast(listener).await,
            "fastws" => serve_accept_loop(listener, fastws_connection).await,
            "raw" => serve_accept_loop(listener, raw_connection).await,
            other => panic!("unknown server kind {other}"),
        }
    });
}

struct Echo;

impl wsgrpc::ws::Handler for Echo {
    async fn on_message(
        &self,
        session: &mut wsgrpc::ws::Session,
        message: wsgrpc::ws::Message,
    ) -> wsgrpc::Result<()> {
        session.send(message).await
    }
}

async fn serve_wsgrpc(listener: TcpListener) {
    let mut config = wsgrpc::ws::Config::default().max_connections(100_000);
    // Knobs for exploring the defaults; the reported figures use the default `Config`.
    if let Some(size) = std::env::var("BENCH_READ_BUFFER")
        .ok()
        .and_then(|size| size.parse().ok())
    {
        config = config.read_buffer_size(size);
    }
    wsgrpc::ws::Server::new(Echo)
        .config(config)
        .serve(listener, std::future::pending())
        .await
        .expect("serve");
}

/// Subscribers join the hub; whatever the connection on `/send` sends is broadcast to them all.
struct Broadcast {
    hub: wsgrpc::ws::Hub,
}

impl wsgrpc::ws::Handler for Broadcast {
    async fn on_open(&self, session: &mut wsgrpc::ws::Session) -> wsgrpc::Result<()> {
        if session.path() != "/send" {
            self.hub.add(&session.handle());
        }
        Ok(())
    }

    async fn on_message(
        &self,
        _session: &mut wsgrpc::ws::Session,
        message: wsgrpc::ws::Message,
    ) -> wsgrpc::Result<()> {
        self.hub.broadcast(message);
        Ok(())
    }

    async fn on_close(&self, session: &mut wsgrpc::ws::Session, _reason: wsgrpc::ws::CloseReason) {
        self.hub.remove(session.id());
    }
}

async fn serve_hub(listener: TcpListener) {
    let config = wsgrpc::ws::Config::default().max_connections(100_000);
    // Lag rather than close: the load generator paces itself, so a lagging subscriber is a
    // measurement problem to report, not a client to drop.
    let hub = wsgrpc::ws::Hub::with_policy(wsgrpc::ws::SlowConsumer::Lag);
    wsgrpc::ws::Server::new(Broadcast { hub })
        .config(config)
        .serve(listener, std::future::pending())
        .await
        .expect("serve");
}

async fn serve_accept_loop<F, Fut>(listener: TcpListener, connection: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(stream));
    }
}

/// (a) tokio-tungstenite the common way.
async fn naive_connection(stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            break;
        }
    }
}

/// (b) the best hand-written tokio-tungstenite loop: reader and writer split, the writer feeds
/// whatever is queued and flushes only when nothing more is ready.
async fn tuned_connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (queue, mut queued) = tokio::sync::mpsc::channel(256);
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = queued.try_recv() {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        if (message.is_text() || message.is_binary()) && queue.send(message).await.is_err() {
            break;
        }
    }
    drop(queue);
    let _ = writer.await;
}

/// (b') tokio-tungstenite's `examples/echo-server.rs`: the stream of text and binary messages
/// forwarded into the sink, which feeds while more is ready and flushes when the stream waits.
async fn tt_echo_connection(stream: TcpStream) {
    use futures::TryStreamExt;
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|message| std::future::ready(message.is_text() || message.is_binary()))
        .forward(write)
        .await;
}

/// Broadcast the way plain tokio-tungstenite servers are written: a `tokio::sync::broadcast`
/// channel, one task per connection that sends each message to its peer as it comes. Whatever
/// the connection on `/send` sends goes to every other connection.
// tungstenite's handshake callback returns `Result<Response, ErrorResponse>`: its size is theirs.
#[allow(clippy::result_large_err)]
async fn serve_tt_broadcast(listener: TcpListener) {
    let (sender, _) =
        tokio::sync::broadcast::channel::<tokio_tungstenite::tungstenite::Message>(1024);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let sender = sender.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut path = String::new();
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(
                stream,
                |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                 response: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    path = request.uri().path().to_owned();
                    Ok(response)
                },
            )
            .await
            else {
                return;
            };
            let (mut sink, mut source) = ws.split();
            if path == "/send" {
                while let Some(Ok(message)) = source.next().await {
                    if message.is_binary() || message.is_text() {
                        let _ = sender.send(message);
                    }
                }
                return;
            }
            let mut receiver = sender.subscribe();
            loop {
                tokio::select! {
                    message = receiver.recv() => match message {
                        Ok(message) => {
                            if sink.send(message).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    incoming = source.next() => {
                        if !matches!(incoming, Some(Ok(_))) {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// (c) fastwebsockets' echo server loop (its example, after our own HTTP upgrade).
async fn fastws_connection(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if !accept_upgrade(&mut stream).await {
        return;
    }
    let mut ws = fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = fastwebsockets::FragmentCollector::new(ws);
    let _ = tokio::task::unconstrained(async move {
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                fastwebsockets::OpCode::Close => break,
                fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => {
                    ws.write_frame(frame).await?;
                }
                _ => {}
            }
        }
        Ok::<(), fastwebsockets::WebSocketError>(())
    })
    .await;
}

/// Reads an upgrade request and answers 101 (for fastwebsockets, which leaves HTTP to others).
async fn accept_upgrade(stream: &mut TcpStream) -> bool {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let Some(key) = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    }) else {
        return false;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await.is_ok()
}

/// (d) the floor: echo the bytes of length-prefixed frames straight back.
async fn raw_connection(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    let _ = tokio::io::copy(&mut reader, &mut writer).await;
}

// ---------------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Wire {
    WebSocket,
    Raw,
}

fn wire_of(kind: &str) -> Wire {
    if kind == "raw" {
        Wire::Raw
    } else {
        Wire::WebSocket
    }
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The payload of message `seq`: its number, then a pattern derived from it.
fn fill_payload(out: &mut Vec<u8>, seq: u64, size: usize) {
    let start = out.len();
    out.extend((0..size).map(|index| (seq as u8).wrapping_add(index as u8).wrapping_mul(31)));
    let tag = seq.to_le_bytes();
    let tagged = size.min(8);
    out[start..start + tagged].copy_from_slice(&tag[..tagged]);
}

fn payload_matches(payload: &[u8], seq: u64, size: usize) -> bool {
    if payload.len() != size {
        return false;
    }
    let tagged = size.min(8);
    payload[..tagged] == seq.to_le_bytes()[..tagged]
        && payload[tagged..].iter().enumerate().all(|(offset, byte)| {
            *byte
                == (seq as u8)
                    .wrapping_add((offset + tagged) as u8)
                    .wrapping_mul(31)
        })
}

/// Appends one frame carrying message `seq` as the client sends it.
fn encode(out: &mut Vec<u8>, wire: Wire, seq: u64, size: usize) {
    match wire {
        Wire::Raw => {
            out.extend_from_slice(&(size as u32).to_le_bytes());
            fill_payload(out, seq, size);
        }
        Wire::WebSocket => {
            out.push(0x82);
            if size < 126 {
                out.push(0x80 | size as u8);
            } else if size <= 65535 {
                out.push(0x80 | 126);
                out.extend_from_slice(&(size as u16).to_be_bytes());
            } else {
                out.push(0x80 | 127);
                out.extend_from_slice(&(size as u64).to_be_bytes());
            }
            out.extend_from_slice(&MASK);
            let start = out.len();
            fill_payload(out, seq, size);
            for (index, byte) in out[start..].iter_mut().enumerate() {
                *byte ^= MASK[index % 4];
            }
        }
    }
}

/// A complete frame at the front of `buffer`: `(header length, payload length, opcode)`.
fn frame_at(buffer: &[u8], wire: Wire) -> Option<(usize, usize, u8)> {
    match wire {
        Wire::Raw => {
            let length = u32::from_le_bytes(buffer.get(..4)?.try_into().ok()?) as usize;
            (buffer.len() >= 4 + length).then_some((4, length, 2))
        }
        Wire::WebSocket => {
            let (first, second) = (*buffer.first()?, *buffer.get(1)?);
            let (header, length) = match second & 0x7f {
                126 => (
                    4,
                    u16::from_be_bytes(buffer.get(2..4)?.try_into().ok()?) as usize,
                ),
                127 => (
                    10,
                    u64::from_be_bytes(buffer.get(2..10)?.try_into().ok()?) as usize,
                ),
                short => (2, short as usize),
            };
            (buffer.len() >= header + length).then_some((header, length, first & 0x0f))
        }
    }
}

/// Connects and, for WebSocket servers, upgrades. Returns the stream and bytes read past the 101.
async fn open(addr: SocketAddr, wire: Wire) -> std::io::Result<(TcpStream, BytesMut)> {
    open_path(addr, wire, "/ws").await
}

async fn open_path(
    addr: SocketAddr,
    wire: Wire,
    path: &str,
) -> std::io::Result<(TcpStream, BytesMut)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut buffer = BytesMut::with_capacity(4096);
    if wire == Wire::WebSocket {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        loop {
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                if !buffer.starts_with(b"HTTP/1.1 101") {
                    return Err(std::io::Error::other("upgrade refused"));
                }
                buffer.advance(end + 4);
                break;
            }
        }
    }
    Ok((stream, buffer))
}

struct Load {
    connections: usize,
    in_flight: usize,
    size: usize,
}

/// Runs echo traffic until `stop`, counting verified echoes in `echoes`.
async fn echo_connection(
    addr: SocketAddr,
    wire: Wire,
    load: Arc<Load>,
    echoes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let (mut stream, mut buffer) = open(addr, wire).await.expect("connect");
    buffer.reserve((load.size + 16) * load.in_flight + 4096);
    let mut out = Vec::with_capacity((load.size + 16) * load.in_flight);
    let (mut sent, mut received) = (0u64, 0u64);
    for _ in 0..load.in_flight {
        encode(&mut out, wire, sent, load.size);
        sent += 1;
    }
    stream.write_all(&out).await.expect("write");
    out.clear();
    loop {
        if stream.read_buf(&mut buffer).await.expect("read") == 0 {
            panic!("server closed the connection");
        }
        let mut local = 0;
        while let Some((header, length, opcode)) = frame_at(&buffer, wire) {
            assert!(opcode == 2, "unexpected opcode {opcode}");
            assert!(
                payload_matches(&buffer[header..header + length], received, load.size),
                "echo {received} differs from what was sent"
            );
            buffer.advance(header + length);
            received += 1;
            local += 1;
            if !stop.load(Ordering::Relaxed) {
                encode(&mut out, wire, sent, load.size);
                sent += 1;
            }
        }
        echoes.fetch_add(local, Ordering::Relaxed);
        if !out.is_empty() {
            stream.write_all(&out).await.expect("write");
            out.clear();
        }
        if received == sent {
            return;
        }
        if buffer.capacity() - buffer.len() < load.size + 16 {
            buffer.reserve(load.size + 4096);
        }
    }
}

/// Throughput and server CPU per message for one load against one server.
async fn measure_echo(server: &ServerProcess, load: Load, window: Duration) -> Measured {
    let load = Arc::new(load);
    let echoes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let wire = wire_of(server.name);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..load.connections {
        tasks.spawn(echo_connection(
            server.addr,
            wire,
            load.clone(),
            echoes.clone(),
            stop.clone(),
        ));
    }
    let measured = measure_window(server, &echoes, window).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(result) = tasks.join_next().await {
        result.expect("load connection");
    }
    measured
}

/// Round-trip latency of one message at a time on one connection.
async fn measure_latency(
    server: &ServerProcess,
    window: Duration,
) -> (Duration, Duration, Duration, Measured) {
    let wire = wire_of(server.name);
    let (mut stream, mut buffer) = open(server.addr, wire).await.expect("connect");
    let size = 32;
    let mut out = Vec::with_capacity(64);
    let mut samples = Vec::with_capacity(200_000);
    let mut seq = 0u64;
    let (cpu_before, started) = (server.cpu_ns(), Instant::now());
    while started.elapsed() < window {
        encode(&mut out, wire, seq, size);
        let sent_at = Instant::now();
        stream.write_all(&out).await.expect("write");
        out.clear();
        loop {
            if let Some((header, length, _)) = frame_at(&buffer, wire) {
                assert!(payload_matches(&buffer[header..header + length], seq, size));
                buffer.advance(header + length);
                break;
            }
            assert!(
                stream.read_buf(&mut buffer).await.expect("read") > 0,
                "closed"
            );
        }
        samples.push(sent_at.elapsed());
        seq += 1;
    }
    let cpu = server.cpu_ns() - cpu_before;
    samples.sort_unstable();
    let at = |quantile: f64| {
        samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)]
    };
    let measured = Measured {
        per_second: samples.len() as f64 / started.elapsed().as_secs_f64(),
        cpu_ns_per_op: cpu as f64 / samples.len() as f64,
    };
    (at(0.5), at(0.99), at(0.999), measured)
}

/// Connect, upgrade, one message, close: as many as possible from 8 concurrent loops.
async fn measure_churn(server: &ServerProcess, window: Duration) -> Measured {
    let wire = wire_of(server.name);
    let cycles = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (cycles, stop, addr) = (cycles.clone(), stop.clone(), server.addr);
        loops.spawn(async move {
            let mut out = Vec::with_capacity(128);
            while !stop.load(Ordering::Relaxed) {
                let (mut stream, mut buffer) = open(addr, wire).await.expect("connect");
                encode(&mut out, wire, 0, 32);
                stream.write_all(&out).await.expect("write");
                out.clear();
                while frame_at(&buffer, wire).is_none() {
                    assert!(stream.read_buf(&mut buffer).await.expect("read") > 0);
                }
                let (header, length, _) = frame_at(&buffer, wire).expect("frame");
                assert!(payload_matches(&buffer[header..header + length], 0, 32));
                buffer.advance(header + length);
                match wire {
                    // Close frame with code 1000, masked; then read until the server hangs up.
                    Wire::WebSocket => {
                        let code = 1000u16.to_be_bytes();
                        let close = [
                            0x88,
                            0x82,
                            MASK[0],
                            MASK[1],
                            MASK[2],
                            MASK[3],
                            code[0] ^ MASK[0],
                            code[1] ^ MASK[1],
                        ];
                        stream.write_all(&close).await.expect("close");
                    }
                    Wire::Raw => stream.shutdown().await.expect("shutdown"),
                }
                let mut scratch = [0u8; 256];
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while matches!(stream.read(&mut scratch).await, Ok(read) if read > 0) {}
                })
                .await;
                cycles.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let measured = measure_window(server, &cycles, window).await;
    stop.store(true, Ordering::Relaxed);
    while loops.join_next().await.is_some() {}
    measured
}

/// Server memory per open, idle connection (each has exchanged one message first).
async fn measure_idle(server: &ServerProcess, connections: usize) -> f64 {
    let wire = wire_of(server.name);
    // Warm the server's allocator and runtime with a few connections first.
    let mut warm = Vec::new();
    for _ in 0..50 {
        warm.push(open_and_exchange(server.addr, wire).await);
    }
    let before = server.rss_bytes();
    let mut open_streams = Vec::with_capacity(connections);
    let mut opening = tokio::task::JoinSet::new();
    let per_task = connections / 50;
    for _ in 0..50 {
        let addr = server.addr;
        opening.spawn(async move {
            let mut streams = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                streams.push(open_and_exchange(addr, wire).await);
            }
            streams
        });
    }
    while let Some(streams) = opening.join_next().await {
        open_streams.extend(streams.expect("open idle connections"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // let the server settle
    let after = server.rss_bytes();
    let per_connection = after.saturating_sub(before) as f64 / open_streams.len() as f64;
    drop(open_streams);
    drop(warm);
    per_connection
}

async fn open_and_exchange(addr: SocketAddr, wire: Wire) -> TcpStream {
    let (mut stream, mut buffer) = open(addr, wire).await.expect("connect");
    let mut out = Vec::new();
    encode(&mut out, wire, 1, 32);
    stream.write_all(&out).await.expect("write");
    while frame_at(&buffer, wire).is_none() {
        assert!(stream.read_buf(&mut buffer).await.expect("read") > 0);
    }
    stream
}

/// Hub fan-out: one sender, `subscribers` receivers, 128 B messages; the sender keeps at most 8
/// messages ahead of the slowest delivery count. Returns deliveries/s, server CPU per delivery,
/// and server allocations per delivery.
async fn measure_broadcast(
    server: &mut ServerProcess,
    subscribers: usize,
    window: Duration,
) -> (Measured, f64) {
    const SIZE: usize = 128;
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = tokio::task::JoinSet::new();
    let mut ready = Vec::new();
    for _ in 0..subscribers {
        let (stream, buffer) = open(server.addr, Wire::WebSocket).await.expect("subscribe");
        ready.push((stream, buffer));
    }
    for (mut stream, mut buffer) in ready {
        let (delivered, stop) = (delivered.clone(), stop.clone());
        readers.spawn(async move {
            let mut expected = 0u64;
            loop {
                while let Some((header, length, _)) = frame_at(&buffer, Wire::WebSocket) {
                    assert!(
                        payload_matches(&buffer[header..header + length], expected, SIZE),
                        "broadcast {expected} corrupted"
                    );
                    buffer.advance(header + length);
                    expected += 1;
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let read =
                    tokio::time::timeout(Duration::from_millis(200), stream.read_buf(&mut buffer))
                        .await;
                if let Ok(read) = read {
                    assert!(read.expect("read") > 0, "subscriber dropped");
                }
            }
        });
    }
    let (mut sender, _) = open_path(server.addr, Wire::WebSocket, "/send")
        .await
        .expect("sender");
    let sending = {
        let (delivered, stop) = (delivered.clone(), stop.clone());
        tokio::spawn(async move {
            let mut out = Vec::with_capacity(256);
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Stay at most 8 messages ahead of what every subscriber has received.
                while delivered.load(Ordering::Relaxed) + 8 * subscribers as u64
                    <= seq * subscribers as u64
                {
                    if stop.load(Ordering::Relaxed) {
                        return sender;
                    }
                    tokio::task::yield_now().await;
                }
                encode(&mut out, Wire::WebSocket, seq, SIZE);
                sender.write_all(&out).await.expect("send");
                out.clear();
                seq += 1;
            }
            sender
        })
    };
    tokio::time::sleep(window / 4).await;
    server.ask("mark");
    let (before, cpu_before, started) = (
        delivered.load(Ordering::Relaxed),
        server.cpu_ns(),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let (after, cpu_after, elapsed) = (
        delivered.load(Ordering::Relaxed),
        server.cpu_ns(),
        started.elapsed(),
    );
    let allocations: f64 = server
        .ask("allocs")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    stop.store(true, Ordering::Relaxed);
    let _sender = sending.await.expect("sender task");
    while readers.join_next().await.is_some() {}
    let deliveries = (after - before).max(1) as f64;
    let measured = Measured {
        per_second: deliveries / elapsed.as_secs_f64(),
        cpu_ns_per_op: (cpu_after - cpu_before) as f64 / deliveries,
    };
    (measured, allocations / deliveries)
}

/// Steady fan-out where nothing batches: one sender paces `rate` messages of 128 B per second to
/// `subscribers` receivers for `window`, so each delivery is its own socket write on every
/// server. Every subscriber checks every message in order. Returns deliveries/s and server CPU
/// per delivery.
async fn measure_steady(
    server: &ServerProcess,
    subscribers: usize,
    rate: u32,
    window: Duration,
) -> Measured {
    const SIZE: usize = 128;
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = tokio::task::JoinSet::new();
    let mut streams = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        streams.push(open(server.addr, Wire::WebSocket).await.expect("subscribe"));
    }
    let total = (rate as f64 * window.as_secs_f64()) as u64;
    for (mut stream, mut buffer) in streams {
        let delivered = delivered.clone();
        readers.spawn(async move {
            let mut expected = 0u64;
            while expected < total {
                while let Some((header, length, _)) = frame_at(&buffer, Wire::WebSocket) {
                    assert!(
                        payload_matches(&buffer[header..header + length], expected, SIZE),
                        "broadcast {expected} corrupted or out of order"
                    );
                    buffer.advance(header + length);
                    expected += 1;
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                if expected == total {
                    break;
                }
                let read =
                    tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buffer))
                        .await
                        .expect("a subscriber waited 10 s for a broadcast")
                        .expect("read");
                assert!(read > 0, "subscriber dropped");
            }
            stream
        });
    }
    let (mut sender, _) = open_path(server.addr, Wire::WebSocket, "/send")
        .await
        .expect("sender");
    // Let every subscriber's upgrade finish on the server before the first broadcast.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu_before, started) = (server.cpu_ns(), Instant::now());
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut out = Vec::with_capacity(256);
    for seq in 0..total {
        ticks.tick().await;
        encode(&mut out, Wire::WebSocket, seq, SIZE);
        sender.write_all(&out).await.expect("send");
        out.clear();
    }
    let mut kept = Vec::with_capacity(subscribers);
    while let Some(stream) = readers.join_next().await {
        kept.push(stream.expect("subscriber"));
    }
    let (cpu, elapsed) = (server.cpu_ns() - cpu_before, started.elapsed());
    let deliveries = delivered.load(Ordering::Relaxed);
    assert_eq!(
        deliveries,
        total * subscribers as u64,
        "every delivery arrives"
    );
    drop((kept, sender));
    Measured {
        per_second: deliveries as f64 / elapsed.as_secs_f64(),
        cpu_ns_per_op: cpu as f64 / deliveries as f64,
    }
}

// ---------------------------------------------------------------------------------------------
// Orchestration and report
// ---------------------------------------------------------------------------------------------

fn run_benchmarks() {
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    let (runtime, fd_limit) = pinned_runtime(CLIENT_CORE);
    let window = Duration::from_secs(env_number("BENCH_SECONDS", 2));
    let rounds = env_number("BENCH_ROUNDS", 3).max(1) as usize;
    let idle_connections =
        (env_number("BENCH_IDLE", 10_000) as usize).min(fd_limit.saturating_sub(200) as usize);
    println!(
        "ws_echo: {cores} cores, server on core {SERVER_CORE}, load on core {CLIENT_CORE}; {rounds} rounds x {window:?} per cell (median)"
    );

    let servers: Vec<ServerProcess> = SERVERS
        .iter()
        .enumerate()
        .filter(|(index, (name, _))| *index == 0 || server_wanted(name))
        .map(|(_, server)| server)
        .map(|(name, kind)| ServerProcess::start(name, kind))
        .collect();
    runtime.block_on(async {
        if wanted("small") {
            report_throughput(
                "small: 64 connections x 16 in flight x 32 B",
                &servers,
                rounds,
                async |server: &ServerProcess| {
                    measure_echo(
                        server,
                        Load {
                            connections: 64,
                            in_flight: 16,
                            size: 32,
                        },
                        window,
                    )
                    .await
                },
            )
            .await;
        }
        if wanted("large") {
            report_throughput(
                "large: 8 connections x 2 in flight x 64 KiB",
                &servers,
                rounds,
                async |server: &ServerProcess| {
                    measure_echo(
                        server,
                        Load {
                            connections: 8,
                            in_flight: 2,
                            size: 64 << 10,
                        },
                        window,
                    )
                    .await
                },
            )
            .await;
        }
        if wanted("latency") {
            println!("\nlatency: 1 connection, 1 message of 32 B in flight");
            println!(
                "{:<10} {:>10} {:>10} {:>10} {:>14}",
                "server", "p50", "p99", "p99.9", "cpu/msg"
            );
            let mut p50s = Vec::new();
            for server in &servers {
                let mut runs = Vec::new();
                for _ in 0..rounds {
                    runs.push(measure_latency(server, window).await);
                }
                runs.sort_by_key(|run| run.0);
                let (p50, p99, p999, measured) = runs[runs.len() / 2];
                p50s.push((server.name, p50));
                println!(
                    "{:<10} {:>10} {:>10} {:>10} {:>12.0}ns",
                    server.name,
                    fmt_duration(p50),
                    fmt_duration(p99),
                    fmt_duration(p999),
                    measured.cpu_ns_per_op
                );
            }
            let ours = p50s[0].1.as_secs_f64();
            let best_peer = p50s
                .iter()
                .filter(|(name, _)| !name.starts_with("wsgrpc") && *name != "raw")
                .map(|(_, p50)| p50.as_secs_f64())
                .fold(f64::INFINITY, f64::min);
            println!(
                "wsgrpc p50 speed vs best of the WebSocket peers: {:.2}x",
                best_peer / ours
            );
        }
        if wanted("churn") {
            report_throughput(
                "churn: connect + upgrade + 1 message + close, 8 loops",
                &servers,
                rounds,
                async |server: &ServerProcess| measure_churn(server, window).await,
            )
            .await;
        }
        if wanted("broadcast") {
            let subscribers = 1000.min(fd_limit.saturating_sub(200) as usize);
            let mut hub_server = ServerProcess::start("wsgrpc", "hub");
            let mut runs = Vec::new();
            for _ in 0..rounds {
                runs.push(measure_broadcast(&mut hub_server, subscribers, window).await);
            }
            runs.sort_by(|a, b| a.0.per_second.total_cmp(&b.0.per_second));
            let (measured, allocations) = runs[runs.len() / 2];
            println!("\nbroadcast: Hub, 1 sender, {subscribers} subscribers, 128 B");
            println!(
                "wsgrpc   {:>12} deliveries, {:>8.0}ns cpu/delivery, {:.4} allocations/delivery",
                fmt_rate(measured.per_second),
                measured.cpu_ns_per_op,
                allocations
            );
        }
        if wanted("steady") {
            // Issue 15: 100 messages/s to 1,000 subscribers, where every delivery is one write.
            let subscribers = 1000.min(fd_limit.saturating_sub(200) as usize);
            let steady_servers = [
                ServerProcess::start("wsgrpc", "hub"),
                ServerProcess::start("wsgrpc-mt", "hub_mt"),
                ServerProcess::start("tt", "tt_broadcast"),
                ServerProcess::start("tt-mt", "tt_broadcast_mt"),
            ];
            report_throughput(
                &format!("steady: Hub, 100 messages/s of 128 B to {subscribers} subscribers"),
                &steady_servers,
                rounds,
                async |server: &ServerProcess| {
                    measure_steady(server, subscribers, 100, window.max(Duration::from_secs(3)))
                        .await
                },
            )
            .await;
        }
        if wanted("idle") {
            println!("\nidle: {idle_connections} open connections, server RSS per connection");
            let mut ours = 0.0;
            for server in &servers {
                let per_connection = measure_idle(server, idle_connections).await;
                if server.name == "wsgrpc" {
                    ours = per_connection;
                }
                println!("{:<10} {:>10.1} KiB", server.name, per_connection / 1024.0);
            }
            println!(
                "wsgrpc target: <= 8 KiB per idle connection: {}",
                if ours <= 8192.0 { "met" } else { "missed" }
            );
        }
    });
}

/// Runs `measure` for every server, `rounds` times interleaved, and prints medians and ratios.
async fn report_throughput<F>(title: &str, servers: &[ServerProcess], rounds: usize, measure: F)
where
    F: AsyncFn(&ServerProcess) -> Measured,
{
    println!("\n{title}");
    let mut runs: Vec<Vec<Measured>> = vec![Vec::new(); servers.len()];
    for _ in 0..rounds {
        for (index, server) in servers.iter().enumerate() {
            runs[index].push(measure(server).await);
        }
    }
    print_table(servers, runs, "msg");
}
