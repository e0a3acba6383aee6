//! Helpers for the one-port tests: an `App` on 127.0.0.1:0 with a shutdown switch, and a plain
//! HTTP/1.1 client for gRPC-Web requests and assets.
//!
//! Included by each `tests/serve_*.rs` with `#[path = "common/serve.rs"] mod serve_common;`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsgrpc::serve::App;
use wsgrpc::ws::{Connections, Handler};

/// Upper bound for any single wait; generous because CI machines are shared.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A one-port server running in a background task.
pub struct TestApp {
    pub addr: SocketAddr,
    pub connections: Connections,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<wsgrpc::Result<()>>>,
}

impl TestApp {
    /// Binds `app` to a fresh loopback port and serves it.
    pub async fn start<H: Handler>(app: App<H>) -> TestApp {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let connections = app.connections();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async {
            let _ = signal.await;
        }));
        TestApp {
            addr,
            connections,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Completes the shutdown signal.
    pub fn signal_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits for the server task to return.
    pub async fn stopped(&mut self) -> wsgrpc::Result<()> {
        let task = self.task.take().expect("server still running");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic")
    }

    /// Waits until `count` WebSocket connections are counted.
    pub async fn wait_websockets(&self, count: usize) {
        let mut watch = self.connections.watch();
        tokio::time::timeout(WAIT, watch.wait_for(|live| *live == count))
            .await
            .unwrap_or_else(|_| panic!("websocket count stuck, expected {count}"))
            .expect("connections alive");
    }
}

/// Sends one request over a fresh HTTP/1.1 connection and reads the whole response.
pub async fn http1(addr: SocketAddr, request: Request<Full<Bytes>>) -> Response<Bytes> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("http/1.1 handshake");
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Response::from_parts(parts, body)
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("http/1.1 exchange in time")
}

/// Sends one request over a fresh cleartext HTTP/2 connection (prior knowledge) and reads the
/// whole response.
pub async fn http2(addr: SocketAddr, request: Request<Full<Bytes>>) -> Response<Bytes> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .expect("http/2 handshake");
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Response::from_parts(parts, body)
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("http/2 exchange in time")
}

/// A gRPC-Web `SayHello` request for `name`, hand-encoded as a browser page would, from a page
/// of `origin` if given.
pub fn grpc_web_hello(addr: SocketAddr, name: &str, origin: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::post("/helloworld.Greeter/SayHello")
        .header("host", addr.to_string())
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.body(hello_frame(name)).expect("valid request")
}

/// The body of a gRPC-Web `SayHello` request: a data frame holding `HelloRequest { name }`.
pub fn hello_frame(name: &str) -> Full<Bytes> {
    assert!(name.len() < 128, "one-byte varint length only");
    let mut message = vec![0x0a, name.len() as u8];
    message.extend_from_slice(name.as_bytes());
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    Full::new(Bytes::from(frame))
}

/// Splits a gRPC-Web response body into the `HelloReply.message` and the trailers block.
pub fn parse_grpc_web(body: &Bytes) -> (Option<String>, String) {
    let mut body = body.clone();
    let mut message = None;
    let mut trailers = String::new();
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let payload = body.split_to(len);
        if flag & 0x80 != 0 {
            trailers.push_str(std::str::from_utf8(&payload).expect("ascii trailers"));
        } else {
            // HelloReply { string message = 1 }: tag 0x0a, one-byte length in these tests.
            assert_eq!(payload[0], 0x0a);
            let len = payload[1] as usize;
            message = Some(String::from_utf8(payload[2..2 + len].to_vec()).expect("utf-8"));
        }
    }
    (message, trailers)
}
