//! Hub broadcast benchmark: deliveries per second from one publisher to 1,000 subscribers, in one
//! process and split over two nodes through Redis and through NATS, with the server CPU time per
//! delivery.
//!
//! `cargo bench --bench hub --features redis,nats` starts every node as a child process of this
//! binary pinned to core 1 (`--server KIND`), and `redis-server` / `nats-server` (Debian's
//! packages) on free loopback ports, unpinned. The load generator runs here on core 0 and speaks
//! WebSocket by hand: 1,000 raw TCP subscribers that parse each frame and check that sequence
//! numbers only grow (a gap is counted as lost, a step back fails the bench), and one publisher
//! writing masked 128-byte binary frames as fast as the server takes them (the waiting
//! `publish_to` paces it). For each setup it reports:
//!
//! - deliveries per second (frames the subscribers read in the window);
//! - node CPU per delivery (all threads of every node process, from /proc);
//! - broker CPU per delivery (the `redis-server` or `nats-server` process);
//! - lost: sequence gaps seen by subscribers (crossing is at-most-once).
//!
//! Environment: `BENCH_SECONDS` (window, default 3), `BENCH_SUBSCRIBERS` (default 1000),
//! `BENCH_ONLY` (comma-separated setups: `in-process`, `redis`, `nats`).

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsgrpc::ws::{Config, Handler, Hub, Message, PathParams, Router, Server, Session};

const PAYLOAD: usize = 128;

fn main() {
    dispatch(run_node, run_benchmarks);
}

// ---------------------------------------------------------------------------------------------
// Nodes (child processes)
// ---------------------------------------------------------------------------------------------

/// Members of `/members/{room}` join; what `/publish/{room}` sends is published to the room.
struct Node {
    hub: Hub,
    joins: bool,
}

fn room(session: &Session) -> String {
    session
        .extensions()
        .get::<PathParams>()
        .and_then(|params| params.get("room"))
        .unwrap_or("bench")
        .to_owned()
}

impl Handler for Node {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        if self.joins {
            self.hub.join(&session.handle(), &room(session));
            session.send("joined").await?;
        }
        Ok(())
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        self.hub.publish_to(&room(session), message).await;
        Ok(())
    }

    async fn on_close(&self, session: &mut Session, _reason: wsgrpc::ws::CloseReason) {
        self.hub.remove(session.id());
    }
}

/// `KIND` is `in-process` or a broker URL.
fn run_node(kind: &str) {
    let (runtime, _) = pinned_runtime(SERVER_CORE);
    runtime.block_on(async {
        let hub = if kind == "in-process" {
            Hub::new()
        } else {
            Hub::builder().broker(kind).build().expect("broker url")
        };
        if let Some(stats) = hub.broker_stats() {
            let _ = stats;
            // Serve only once the link is up, so the window measures crossing, not connecting.
            while !hub.broker_stats().is_some_and(|stats| stats.connected) {
                tokio::time::sleep(Duration::from_millis(10)).await; // polling a counter
            }
        }
        let router = Router::new()
            .route(
                "/members/{room}",
                Node {
                    hub: hub.clone(),
                    joins: true,
                },
            )
            .route("/publish/{room}", Node { hub, joins: false });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("READY {}", listener.local_addr().expect("address"));
        let config = Config::default().max_connections(100_000);
        Server::new(router)
            .config(config)
            .serve(listener, std::future::pending::<()>())
            .await
            .expect("serve");
    });
}

// ---------------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------------

/// Connects and upgrades by hand; returns the socket after the 101.
async fn upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("response head");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgrade refused");
    stream
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    lost: AtomicU64,
}

/// Reads frames forever: waits for the `joined` greeting, then counts numbered binary frames.
async fn subscribe(
    mut stream: TcpStream,
    counters: Arc<Counters>,
    joined: tokio::sync::mpsc::Sender<()>,
) {
    let mut buffer = vec![0u8; 64 << 10];
    let (mut start, mut end) = (0, 0);
    let mut last: Option<u64> = None;
    loop {
        // Parse what is buffered.
        loop {
            let available = &buffer[start..end];
            if available.len() < 2 {
                break;
            }
            let opcode = available[0] & 0x0f;
            let (length, header) = match available[1] & 0x7f {
                126 if available.len() >= 4 => {
                    (u16::from_be_bytes([available[2], available[3]]) as usize, 4)
                }
                127 if available.len() >= 10 => (
                    u64::from_be_bytes(available[2..10].try_into().expect("8 bytes")) as usize,
                    10,
                ),
                126 | 127 => break,
                short => (short as usize, 2),
            };
            if available.len() < header + length {
                break;
            }
            let payload = &available[header..header + length];
            match opcode {
                0x1 => {
                    let _ = joined.try_send(());
                }
                0x2 if payload.len() >= 8 => {
                    let sequence = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
                    if let Some(previous) = last {
                        assert!(
                            sequence > previous,
                            "reordered or repeated: {previous} then {sequence}"
                        );
                        counters
                            .lost
                            .fetch_add(sequence - previous - 1, Ordering::Relaxed);
                    }
                    last = Some(sequence);
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            start += header + length;
        }
        if start == end {
            (start, end) = (0, 0);
        } else if start > buffer.len() / 2 {
            buffer.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        match stream.read(&mut buffer[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(read) => end += read,
        }
    }
}

/// Writes masked binary frames of `PAYLOAD` bytes with growing sequence numbers, forever.
async fn publish(mut stream: TcpStream) {
    const BATCH: usize = 64;
    let frame = 2 + 2 + 4 + PAYLOAD;
    let mut chunk = vec![0u8; BATCH * frame];
    let mut sequence = 0u64;
    loop {
        for slot in chunk.chunks_mut(frame) {
            slot[0] = 0x82;
            slot[1] = 0x80 | 126;
            slot[2..4].copy_from_slice(&(PAYLOAD as u16).to_be_bytes());
            // Mask key zero: the masked payload equals the plain one (RFC 6455 section 5.3).
            slot[4..8].fill(0);
            slot[8..16].copy_from_slice(&sequence.to_be_bytes());
            sequence += 1;
        }
        if stream.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// A broker process on a free port, killed on drop.
struct Broker {
    child: std::process::Child,
    url: String,
}

impl Broker {
    fn start(kind: &str) -> Option<Broker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port()
            .to_string();
        let (program, args, url) = match kind {
            "redis" => (
                "redis-server",
                vec![
                    "--port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                format!("redis://127.0.0.1:{port}"),
            ),
            _ => (
                "nats-server",
                vec!["-a", "127.0.0.1", "-p", &port],
                format!("nats://127.0.0.1:{port}"),
            ),
        };
        let child = std::process::Command::new(program)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20)); // polling a process we do not control
        }
        Some(Broker { child, url })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Row {
    setup: &'static str,
    rate: f64,
    node_cpu_ns: f64,
    broker_cpu_ns: Option<f64>,
    lost: u64,
}

async fn measure(setup: &'static str, subscribers: usize, window: Duration) -> Option<Row> {
    let broker = match setup {
        "in-process" => None,
        kind => match Broker::start(kind) {
            Some(broker) => Some(broker),
            None => {
                eprintln!("{setup}: cannot start its server, skipped");
                return None;
            }
        },
    };
    let nodes: Vec<ServerProcess> = match &broker {
        None => vec![ServerProcess::start("node", "in-process")],
        Some(broker) => vec![
            ServerProcess::start("node A", &broker.url),
            ServerProcess::start("node B", &broker.url),
        ],
    };
    let counters = Arc::new(Counters::default());
    let (joined_tx, mut joined) = tokio::sync::mpsc::channel(subscribers);
    let mut tasks = Vec::new();
    for i in 0..subscribers {
        let node = &nodes[i % nodes.len()];
        let stream = upgrade(node.addr, "/members/bench").await;
        tasks.push(tokio::spawn(subscribe(
            stream,
            counters.clone(),
            joined_tx.clone(),
        )));
    }
    for _ in 0..subscribers {
        joined.recv().await.expect("greeting");
    }
    // Presence reports need not have crossed: delivery does not depend on them.
    let publisher = upgrade(nodes[0].addr, "/publish/bench").await;
    tasks.push(tokio::spawn(publish(publisher)));

    tokio::time::sleep(Duration::from_millis(500)).await; // warm-up before the window
    let cpu = |nodes: &[ServerProcess]| nodes.iter().map(ServerProcess::cpu_ns).sum::<u64>();
    let broker_cpu = || {
        broker
            .as_ref()
            .map(|broker| process_cpu_ns(broker.child.id()))
    };
    let (delivered_0, lost_0) = (
        counters.delivered.load(Ordering::Relaxed),
        counters.lost.load(Ordering::Relaxed),
    );
    let (cpu_0, broker_0, started) = (cpu(&nodes), broker_cpu(), Instant::now());
    tokio::time::sleep(window).await; // the measurement window
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = counters.delivered.load(Ordering::Relaxed) - delivered_0;
    let lost = counters.lost.load(Ordering::Relaxed) - lost_0;
    let node_cpu = cpu(&nodes) - cpu_0;
    let broker_cpu = broker_cpu()
        .zip(broker_0)
        .map(|(after, before)| after - before);
    for task in tasks {
        task.abort();
    }
    drop(nodes);
    let per = |ns: u64| ns as f64 / delivered.max(1) as f64;
    Some(Row {
        setup,
        rate: delivered as f64 / elapsed,
        node_cpu_ns: per(node_cpu),
        broker_cpu_ns: broker_cpu.map(per),
        lost,
    })
}

fn run_benchmarks() {
    raise_fd_limit();
    pin_to_core(CLIENT_CORE);
    let window = Duration::from_secs(env_number("BENCH_SECONDS", 3));
    let subscribers = env_number("BENCH_SUBSCRIBERS", 1000) as usize;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "hub broadcast: 1 publisher, {subscribers} subscribers, {PAYLOAD} B binary messages, \
         {}s window; nodes pinned to core {SERVER_CORE}, load on core {CLIENT_CORE}",
        window.as_secs()
    );
    println!(
        "{:<12} {:>9} {:>14} {:>11} {:>16} {:>10}",
        "setup", "nodes", "deliveries/s", "node CPU", "broker CPU", "lost"
    );
    for setup in ["in-process", "redis", "nats"] {
        if !wanted(setup) {
            continue;
        }
        let Some(row) = runtime.block_on(measure(setup, subscribers, window)) else {
            continue;
        };
        println!(
            "{:<12} {:>9} {:>14} {:>11} {:>16} {:>10}",
            row.setup,
            if row.setup == "in-process" { "1" } else { "2" },
            fmt_rate(row.rate),
            format!("{:.0} ns", row.node_cpu_ns),
            row.broker_cpu_ns
                .map_or_else(|| "-".to_owned(), |ns| format!("{ns:.0} ns")),
            row.lost,
        );
    }
}
