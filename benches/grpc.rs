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
//! Environment: `BENCH_SECONDS` (default 2), `BENCH_ROUNDS` (default 3), `BENCH_IDLE` (idle
//! connections, default 1000), `BENCH_ONLY` (comma-separated scenario names).

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::*;
use tokio::net::TcpListener;
use wsgrpc::grpc::pb::HelloRequest;
use wsgrpc::grpc::pb::greeter_client::GreeterClient;

fn main() {
    dispatch(run_server, run_benchmarks);
}

fn run_server(kind: &str) {
    let (runtime, _) = pinned_runtime(SERVER_CORE);
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
                server
                    .serve(listener, std::future::pending())
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
    let mut servers = vec![
        ServerProcess::start("wsgrpc", "wsgrpc"),
        ServerProcess::start("tonic", "tonic"),
    ];
    servers.extend(start_go_server());

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
        if wanted("idle") {
            println!("\nidle: {idle} open HTTP/2 connections, server RSS per connection");
            for server in &servers {
                let per_connection = measure_idle(server, idle).await;
                println!("{:<8} {:>10.1} KiB", server.name, per_connection / 1024.0);
            }
        }
    });
}
