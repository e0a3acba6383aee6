//! Helpers for the gRPC integration tests: a server on 127.0.0.1:0 with a shutdown switch, tonic
//! clients for it, and greetings the tests can observe and hold.
//!
//! Included by each `tests/grpc_*.rs` with `#[path = "common/grpc.rs"] mod grpc_common;`, so not
//! every test file uses every helper.
#![allow(dead_code, unreachable_pub)]

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::{Buf, BufMut, Bytes};
use tokio::{
    net::TcpListener,
    sync::{Notify, Semaphore, mpsc, oneshot},
    task::JoinHandle,
};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::{Channel, Endpoint},
};
use wsgrpc::grpc::{Greet, GrpcServer, HealthHandle, pb::greeter_client::GreeterClient};

/// Upper bound for anything a test waits for; generous so a loaded CI machine does not flake.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A server running on 127.0.0.1:0 in a background task.
pub struct TestServer {
    pub addr: SocketAddr,
    pub health: HealthHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<wsgrpc::Result<()>>>,
}

impl TestServer {
    /// Assembles `server` and serves it on a fresh loopback port.
    pub async fn start(server: GrpcServer) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let parts = server.into_parts().await.expect("assemble the server");
        let health = parts.health.clone();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(parts.serve(listener, async {
            let _ = signal.await;
        }));
        TestServer {
            addr,
            health,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new connection to the server.
    pub async fn channel(&self) -> Channel {
        within(
            "connect",
            Endpoint::from_shared(self.url())
                .expect("valid url")
                .connect(),
        )
        .await
        .expect("connect to the test server")
    }

    /// A Greeter client on a new connection.
    pub async fn client(&self) -> GreeterClient<Channel> {
        GreeterClient::new(self.channel().await)
    }

    /// Fires the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits for `serve` to return after [`signal_shutdown`](Self::signal_shutdown).
    pub async fn stopped(&mut self) -> wsgrpc::Result<()> {
        let task = self.task.take().expect("server already awaited");
        within("the server to stop", task)
            .await
            .expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A greeting that counts how many times it was asked and replies with a fixed message, so a test
/// can see how far the server has run ahead of its client.
#[derive(Clone)]
pub struct Counting {
    pub produced: Arc<AtomicUsize>,
    changed: Arc<Notify>,
    reply: Arc<str>,
}

impl Counting {
    pub fn new(reply_len: usize) -> Self {
        Counting {
            produced: Arc::new(AtomicUsize::new(0)),
            changed: Arc::new(Notify::new()),
            reply: "x".repeat(reply_len).into(),
        }
    }

    pub fn produced(&self) -> usize {
        self.produced.load(Ordering::SeqCst)
    }

    /// Resolves once more than `count` replies have been produced.
    pub async fn produced_more_than(&self, count: usize) {
        loop {
            let changed = self.changed.notified();
            if self.produced() > count {
                return;
            }
            changed.await;
        }
    }
}

impl Greet for Counting {
    fn greet(&self, _name: &str) -> impl Future<Output = Result<String, Status>> + Send {
        self.produced.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        std::future::ready(Ok(self.reply.to_string()))
    }
}

/// A greeting that reports each call as it starts and then waits until the test releases it.
#[derive(Clone)]
pub struct Gate {
    entered: mpsc::Sender<String>,
    release: Arc<Semaphore>,
}

/// The test's side of a [`Gate`].
pub struct GateControl {
    entered: mpsc::Receiver<String>,
    release: Arc<Semaphore>,
}

impl Gate {
    pub fn new() -> (Gate, GateControl) {
        let (entered_tx, entered_rx) = mpsc::channel(64);
        let release = Arc::new(Semaphore::new(0));
        (
            Gate {
                entered: entered_tx,
                release: Arc::clone(&release),
            },
            GateControl {
                entered: entered_rx,
                release,
            },
        )
    }
}

impl GateControl {
    /// Waits until a call has entered the greeting; returns its name.
    pub async fn entered(&mut self) -> String {
        within("a call to enter the greeting", self.entered.recv())
            .await
            .expect("gate dropped")
    }

    /// Lets `calls` held calls finish.
    pub fn release(&self, calls: usize) {
        self.release.add_permits(calls);
    }
}

impl Greet for Gate {
    fn greet(&self, name: &str) -> impl Future<Output = Result<String, Status>> + Send {
        let name = name.to_owned();
        let entered = self.entered.clone();
        let release = Arc::clone(&self.release);
        async move {
            let _ = entered.send(name.clone()).await;
            let permit = release
                .acquire()
                .await
                .map_err(|_| Status::internal("gate closed"))?;
            permit.forget();
            Ok(format!("Hello {name}"))
        }
    }
}

/// A codec that sends raw bytes as the request message, to put arbitrary bytes on the wire, and
/// decodes the reply as raw bytes too.
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Sends `body` as the request of the unary method at `path` (`/package.Service/Method`).
pub async fn raw_unary(channel: Channel, path: &'static str, body: Bytes) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// The outcome of [`raw_h2_call`]: the gRPC status code (from the headers of a trailers-only
/// response, or from the trailers) and the response's data bytes.
#[derive(Debug)]
pub struct RawOutcome {
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
    pub data: Bytes,
}

/// One unary call made with a bare HTTP/2 client, so that no client library enforces deadlines or
/// limits of its own: what comes back is what the server decided. `message` is the protobuf-encoded
/// request; it is framed here.
pub async fn raw_h2_call(
    addr: SocketAddr,
    path: &str,
    extra_headers: &[(&'static str, &'static str)],
    message: &[u8],
) -> RawOutcome {
    use http_body_util::BodyExt;

    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("http/2 handshake");
    tokio::spawn(connection);

    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra_headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(Bytes::from(frame)))
        .expect("valid request");

    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("response body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .or_else(|| trailers.get(name))
            .map(|value| value.to_str().expect("ascii header").to_owned())
    };
    RawOutcome {
        grpc_status: header("grpc-status"),
        grpc_message: header("grpc-message"),
        data: collected.to_bytes(),
    }
}
