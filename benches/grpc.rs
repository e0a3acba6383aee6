//! gRPC benchmark: the wsgrpc server builder against a plain tonic `Server`, in the same run.
//!
//! `cargo bench --bench grpc --features grpc` runs each server in a child process pinned to core
//! 1, with the same `Greeter` service behind it, and drives it from a tonic client here on core 0.
//! Scenarios: unary `SayHello` with 1 connection x 1 call at a time, 1 connection x 64 concurrent
//! calls, 16 connections x 16 calls, and server memory per idle HTTP/2 connection. Every reply is
//! checked. A third server, the classic grpc-go `greeter_server`, joins when
//! `benches/grpc_go/build.sh` has built it (from Debian's Go and grpc-go packages) or
//! `GRPC_GO_SERVER` names a binary.
//!
//! When `h2load` (Debian's nghttp2-client, installed by `build.sh`) is present, the same three
//! shapes run again with h2load as the load generator (`h2load-1x1`, `h2load-16x16`,
//! `h2load-1x64`): a C client, cheaper per call than tonic's, so the server's share of the work
//! shows. Those tables report calls per server CPU-second and socket writes per call: counted
//! inside the wsgrpc server (its listener wraps each connection in a counting stream), and for all
//! three servers with `strace -c -f -e trace=write,writev,sendmsg` attached for a fixed number of
//! calls (syscall counts stay exact under strace; its timings do not, so no rate is taken there).
//!
//! `wsgrpc-mt` and `tonic-mt` are the same two servers on tokio's multi-threaded runtime (as
//! `#[tokio::main]` builds it; both workers on the server core), the way the examples run: there
//! a reply can finish on another worker than the connection's, which changes how many replies
//! one socket write carries.
//!
//! Environment: `BENCH_SECONDS` (default 2), `BENCH_ROUNDS` (default 3), `BENCH_IDLE` (idle
//! connections, default 1000), `BENCH_ONLY` (comma-separated scenario names), `BENCH_STRACE`
//! (`0` skips the strace pass), `BENCH_STRACE_CALLS` (default 100000), `BENCH_SERVERS` (comma-separated server
//! names besides `wsgrpc`).

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use wsgrpc::grpc::pb::HelloRequest;
use wsgrpc::grpc::pb::greeter_client::GreeterClient;

fn main() {
    dispatch(run_server, run_benchmarks);
}

fn run_server(kind: &str) {
    // `_mt`: the same server on a multi-threaded runtime, as `#[tokio::main]` (the examples)
    // builds it, every worker on the server core.
    let (kind, multi_thread) = match kind.strip_suffix("_mt") {
        Some(kind) => (kind, true),
        None => (kind, false),
    };
    let (runtime, _) = if multi_thread {
        pinned_multi_thread_runtime(SERVER_CORE)
    } else {
        pinned_runtime(SERVER_CORE)
    };
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("READY {}", listener.local_addr().expect("addr"));
        match kind {
            "wsgrpc" => {
                let mut config = wsgrpc::grpc::Config::default();
                if std::env::var_os("BENCH_NO_KEEPALIVE").is_some() {
                    config.http2_keepalive_interval = None;
                }
                let server = wsgrpc::grpc::GrpcServer::new().config(config);
                // Socket writes are counted for the h2load table's writes per call.
                serve_commands(|command| match command {
                    "writes" => WRITES.load(Ordering::Relaxed).to_string(),
                    other => format!("unknown command {other}"),
                });
                server
                    .serve(CountingListener(listener), std::future::pending())
                    .await
                    .expect("serve");
            }
            "tonic" => {
                let greeter = wsgrpc::grpc::pb::greeter_server::GreeterServer::new(
                    wsgrpc::grpc::GreeterService::default(),
                );
                tonic::transport::Server::builder()
                    .add_service(greeter)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await
                    .expect("serve");
            }
            other => panic!("unknown server kind {other}"),
        }
    });
}

/// Socket writes (`write`/`writev` calls that wrote something) of the wsgrpc server child.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// A TCP listener whose connections count their socket writes in [`WRITES`]: the same server, with
/// one relaxed atomic increment per write syscall.
struct CountingListener(TcpListener);

impl wsgrpc::net::Listener for CountingListener {
    type Io = CountingIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> std::io::Result<(CountingIo, Option<SocketAddr>)> {
        let (stream, peer) = self.0.accept().await?;
        Ok((CountingIo(stream), Some(peer)))
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn configure(io: &CountingIo, nodelay: bool) -> std::io::Result<()> {
        io.0.set_nodelay(nodelay)
    }
}

struct CountingIo(tokio::net::TcpStream);

fn count_write(result: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
    if let Poll::Ready(Ok(written)) = &result
        && *written > 0
    {
        WRITES.fetch_add(1, Ordering::Relaxed);
    }
    result
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        count_write(Pin::new(&mut self.0).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        count_write(Pin::new(&mut self.0).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The grpc-go baseline, pinned with `taskset`: `GRPC_GO_SERVER`, or what
/// `benches/grpc_go/build.sh` built. Absent binary: the column is left out, with a note.
fn start_go_server() -> Option<ServerProcess> {
    let built = concat!(env!("CARGO_MANIFEST_DIR"), "/target/grpc-go/greeter_server");
    let binary = std::env::var("GRPC_GO_SERVER").unwrap_or_else(|_| built.to_owned());
    if !std::path::Path::new(&binary).exists() {
        println!("(grpc-go baseline not built: run benches/grpc_go/build.sh to include it)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    ServerProcess::start_command(
        "grpc-go",
        "taskset",
        &[
            "-c",
            &SERVER_CORE.to_string(),
            &binary,
            &format!("-port={port}"),
        ],
        format!("127.0.0.1:{port}").parse().ok()?,
    )
}

async fn client(addr: SocketAddr) -> GreeterClient<tonic::transport::Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .tcp_nodelay(true);
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            return GreeterClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // the child may still be starting
    }
    panic!("cannot connect to {addr}");
}

async fn call(client: &mut GreeterClient<tonic::transport::Channel>, name: &str) {
    let reply = client
        .say_hello(HelloRequest {
            name: name.to_owned(),
        })
        .await
        .expect("SayHello");
    assert_eq!(reply.into_inner().message, format!("Hello {name}"));
}

async fn measure_unary(
    server: &ServerProcess,
    connections: usize,
    concurrency: usize,
    window: Duration,
) -> Measured {
    let calls = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..connections {
        let channel = client(server.addr).await;
        for worker in 0..concurrency {
            let (mut channel, calls, stop) = (channel.clone(), calls.clone(), stop.clone());
            let name = format!("caller {connection}/{worker}");
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    call(&mut channel, &name).await;
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    let measured = measure_window(server, &calls, window).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(result) = tasks.join_next().await {
        result.expect("caller");
    }
    measured
}

/// One h2load cell: calls per second, server CPU per call, and the server's socket writes per
/// call when known.
#[derive(Clone, Copy)]
struct H2loadMeasured {
    per_second: f64,
    cpu_ns_per_call: f64,
    writes_per_call: Option<f64>,
}

/// The request body h2load sends: one length-prefixed `HelloRequest { name: "world" }`, written
/// once under target/.
fn h2load_body() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/h2load-hello.bin");
    let message = [0x0a, 5, b'w', b'o', b'r', b'l', b'd'];
    let mut framed = vec![0, 0, 0, 0, message.len() as u8];
    framed.extend_from_slice(&message);
    std::fs::write(&path, framed).expect("write the h2load request body");
    path
}

/// Runs h2load on the client core against `server`: `connections` x `streams` concurrent
/// `SayHello` calls for `seconds` (whole seconds: h2load's `-D`), or `calls` in all when given.
/// Returns (calls that succeeded, calls per second).
fn run_h2load(
    server: &ServerProcess,
    body: &std::path::Path,
    connections: usize,
    streams: usize,
    seconds: u64,
    calls: Option<u64>,
) -> (u64, f64) {
    let url = format!("http://{}/helloworld.Greeter/SayHello", server.addr);
    let (connections, streams) = (connections.to_string(), streams.to_string());
    let mut args = vec![
        "-c".to_owned(),
        CLIENT_CORE.to_string(),
        "h2load".to_owned(),
        "-c".to_owned(),
        connections,
        "-m".to_owned(),
        streams,
        "-t".to_owned(),
        "1".to_owned(),
        "-d".to_owned(),
        body.display().to_string(),
        "-H".to_owned(),
        "content-type: application/grpc".to_owned(),
        "-H".to_owned(),
        "te: trailers".to_owned(),
    ];
    match calls {
        Some(calls) => args.extend(["-n".to_owned(), calls.to_string()]),
        None => args.extend(["-D".to_owned(), seconds.to_string()]),
    }
    args.push(url);
    let output = std::process::Command::new("taskset")
        .args(&args)
        .output()
        .expect("run h2load");
    let text = String::from_utf8_lossy(&output.stdout);
    // "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, ..."
    let succeeded = text
        .lines()
        .find(|line| line.starts_with("requests:"))
        .and_then(|line| {
            line.split(',')
                .find(|part| part.trim_end().ends_with("succeeded"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("unexpected h2load output: {text}"));
    // "finished in 2.00s, 50000.00 req/s, 1.2MB/s"
    let per_second = text
        .lines()
        .find(|line| line.starts_with("finished in"))
        .and_then(|line| {
            line.split(", ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(f64::NAN);
    // Every call must have been answered with HTTP 200 (h2load counts 2xx as succeeded).
    assert!(
        text.contains("0 failed, 0 errored"),
        "h2load saw failures against {}: {text}",
        server.name
    );
    (succeeded, per_second)
}

fn measure_h2load(
    server: &mut ServerProcess,
    body: &std::path::Path,
    connections: usize,
    streams: usize,
    window: Duration,
) -> H2loadMeasured {
    // Warm-up: connections, caches and the allocator settle before the measured run.
    run_h2load(server, body, connections, streams, 0, Some(5_000));
    let writes_before = server
        .name
        .starts_with("wsgrpc")
        .then(|| server.ask("writes"));
    let cpu_before = server.cpu_ns();
    let (calls, per_second) = run_h2load(
        server,
        body,
        connections,
        streams,
        window.as_secs().max(1),
        None,
    );
    let cpu = server.cpu_ns().saturating_sub(cpu_before) as f64;
    let writes_per_call = writes_before.map(|before| {
        let after = server.ask("writes");
        let delta = after.parse::<u64>().unwrap_or(0) - before.parse::<u64>().unwrap_or(0);
        delta as f64 / calls.max(1) as f64
    });
    H2loadMeasured {
        per_second,
        cpu_ns_per_call: cpu / calls.max(1) as f64,
        writes_per_call,
    }
}

/// Counts the server's `write`, `writev` and `sendmsg` syscalls with `strace -c -f` attached for
/// `calls` calls. Syscall counts stay exact under strace (its timings do not, so the rate is not
/// used). `None` when strace cannot attach (not installed, or ptrace not permitted).
fn strace_writes(
    server: &ServerProcess,
    body: &std::path::Path,
    connections: usize,
    streams: usize,
    calls: u64,
) -> Option<f64> {
    use std::io::BufRead;
    let summary = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/strace-{}.txt", server.pid()));
    let mut strace = std::process::Command::new("strace")
        .args(["-c", "-f", "-e", "trace=write,writev,sendmsg", "-o"])
        .arg(&summary)
        .args(["-p", &server.pid().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    // strace says "Process N attached" once it traces the process.
    let mut stderr = std::io::BufReader::new(strace.stderr.take()?);
    let mut line = String::new();
    if stderr.read_line(&mut line).ok()? == 0 || !line.contains("attached") {
        let _ = strace.kill();
        let _ = strace.wait();
        return None;
    }
    let (succeeded, _) = run_h2load(server, body, connections, streams, 0, Some(calls));
    // SIGINT detaches strace and makes it write its summary.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let text = std::fs::read_to_string(&summary).ok()?;
    let _ = std::fs::remove_file(&summary);
    // Rows: "% time  seconds  usecs/call  calls  [errors]  syscall".
    let writes: u64 = text
        .lines()
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let name = *fields.last()?;
            matches!(name, "write" | "writev" | "sendmsg")
                .then(|| fields.get(3)?.parse::<u64>().ok())?
        })
        .sum();
    Some(writes as f64 / succeeded.max(1) as f64)
}

async fn measure_idle(server: &ServerProcess, connections: usize) -> f64 {
    let mut warm = Vec::new();
    for _ in 0..20 {
        let mut channel = client(server.addr).await;
        call(&mut channel, "warm").await;
        warm.push(channel);
    }
    let before = server.rss_bytes();
    let mut open = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut channel = client(server.addr).await;
        call(&mut channel, "idle").await;
        open.push(channel);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server.rss_bytes();
    after.saturating_sub(before) as f64 / connections as f64
}

fn run_benchmarks() {
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    let (runtime, fd_limit) = pinned_runtime(CLIENT_CORE);
    let window = Duration::from_secs(env_number("BENCH_SECONDS", 2));
    let rounds = env_number("BENCH_ROUNDS", 3).max(1) as usize;
    let idle = (env_number("BENCH_IDLE", 1000) as usize).min(fd_limit.saturating_sub(200) as usize);
    println!(
        "grpc: {cores} cores, server on core {SERVER_CORE}, load on core {CLIENT_CORE}; {rounds} rounds x {window:?} per cell (median)"
    );
    let mut servers: Vec<ServerProcess> = [
        ("wsgrpc", "wsgrpc"),
        ("tonic", "tonic"),
        ("wsgrpc-mt", "wsgrpc_mt"),
        ("tonic-mt", "tonic_mt"),
    ]
    .into_iter()
    .enumerate()
    .filter(|(index, (name, _))| *index == 0 || server_wanted(name))
    .map(|(_, (name, kind))| ServerProcess::start(name, kind))
    .collect();
    if server_wanted("grpc-go") {
        servers.extend(start_go_server());
    }

    runtime.block_on(async {
        for (scenario, title, connections, concurrency) in [
            ("1x1", "unary SayHello, 1 connection x 1 call", 1, 1),
            (
                "1x64",
                "unary SayHello, 1 connection x 64 concurrent calls",
                1,
                64,
            ),
            (
                "16x16",
                "unary SayHello, 16 connections x 16 concurrent calls",
                16,
                16,
            ),
        ] {
            if !wanted(scenario) {
                continue;
            }
            println!("\n{title}");
            let mut runs: Vec<Vec<Measured>> = vec![Vec::new(); servers.len()];
            for _ in 0..rounds {
                for (index, server) in servers.iter().enumerate() {
                    runs[index].push(measure_unary(server, connections, concurrency, window).await);
                }
            }
            print_table(&servers, runs, "call");
        }
        if h2load_available() {
            run_h2load_scenarios(&mut servers, window, rounds);
        } else {
            println!(
                "\n(h2load not installed: apt-get install nghttp2-client for the h2load table)"
            );
        }
        if wanted("idle") {
            println!("\nidle: {idle} open HTTP/2 connections, server RSS per connection");
            for server in &servers {
                let per_connection = measure_idle(server, idle).await;
                println!("{:<8} {:>10.1} KiB", server.name, per_connection / 1024.0);
            }
        }
    });
}

fn h2load_available() -> bool {
    std::process::Command::new("h2load")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The h2load scenarios: SayHello from nghttp2's C load generator, fast enough on one core not to
/// be the bottleneck, so the figure that counts is calls per server CPU-second. `BENCH_STRACE=0`
/// skips the strace pass (`BENCH_STRACE_CALLS` calls per cell, default 100000).
fn run_h2load_scenarios(servers: &mut [ServerProcess], window: Duration, rounds: usize) {
    let body = h2load_body();
    let strace = env_number("BENCH_STRACE", 1) != 0;
    let strace_calls = env_number("BENCH_STRACE_CALLS", 100_000);
    for (scenario, connections, streams) in [
        ("h2load-1x1", 1, 1),
        ("h2load-16x16", 16, 16),
        ("h2load-1x64", 1, 64),
    ] {
        if !wanted(scenario) {
            continue;
        }
        println!(
            "\nh2load: unary SayHello, {connections} connection(s) x {streams} concurrent calls"
        );
        let mut runs: Vec<Vec<H2loadMeasured>> = vec![Vec::new(); servers.len()];
        for _ in 0..rounds {
            for (index, server) in servers.iter_mut().enumerate() {
                runs[index].push(measure_h2load(server, &body, connections, streams, window));
            }
        }
        let traced: Vec<Option<f64>> = servers
            .iter()
            .map(|server| {
                strace
                    .then(|| strace_writes(server, &body, connections, streams, strace_calls))
                    .flatten()
            })
            .collect();
        let medians: Vec<H2loadMeasured> = runs
            .into_iter()
            .map(|runs| H2loadMeasured {
                per_second: median(runs.iter().map(|run| run.per_second).collect()),
                cpu_ns_per_call: median(runs.iter().map(|run| run.cpu_ns_per_call).collect()),
                writes_per_call: runs[0]
                    .writes_per_call
                    .map(|_| median(runs.iter().filter_map(|run| run.writes_per_call).collect())),
            })
            .collect();
        let ours = medians[0].cpu_ns_per_call;
        println!(
            "{:<10} {:>12} {:>18} {:>14} {:>14} {:>14}",
            "server", "rate", "calls/server-cpu-s", "wsgrpc cpu x", "writes/call", "strace w/call"
        );
        for ((server, measured), traced) in servers.iter().zip(&medians).zip(&traced) {
            let show =
                |value: Option<f64>| value.map_or("-".to_owned(), |value| format!("{value:.3}"));
            println!(
                "{:<10} {:>12} {:>18} {:>13.2}x {:>14} {:>14}",
                server.name,
                fmt_rate(measured.per_second),
                fmt_rate(1e9 / measured.cpu_ns_per_call),
                // Above 1: that server needs more CPU per call than wsgrpc.
                measured.cpu_ns_per_call / ours,
                show(measured.writes_per_call),
                show(*traced),
            );
        }
    }
}
