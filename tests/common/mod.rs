//! Helpers shared by the WebSocket integration tests: a server on 127.0.0.1:0, real clients, and a
//! raw TCP client for sending what well-behaved clients never send.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsgrpc::Shutdown;
use wsgrpc::ws::{Config, Connections, Handler, Server};

/// Upper bound for any single wait in a test; generous because CI machines are shared.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a test holds of a running server: its live connections and its shutdown trigger.
#[derive(Clone)]
pub struct ServerHandle {
    pub connections: Connections,
    pub shutdown: Shutdown,
}

impl ServerHandle {
    /// Starts the graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Live connections.
    pub fn connections(&self) -> usize {
        self.connections.count()
    }

    /// Every change of the live connection count.
    pub fn watch_connections(&self) -> tokio::sync::watch::Receiver<usize> {
        self.connections.watch()
    }
}

/// Serves `handler` on `listener` in a task; the handle stops it.
pub fn spawn_server<H: Handler>(
    server: Server<H>,
    listener: TcpListener,
) -> (ServerHandle, JoinHandle<wsgrpc::Result<()>>) {
    let handle = ServerHandle {
        connections: server.connections(),
        shutdown: Shutdown::new(),
    };
    let task = tokio::spawn(server.serve(listener, handle.shutdown.triggered()));
    (handle, task)
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: JoinHandle<wsgrpc::Result<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Waits until the server reports `count` live connections.
    pub async fn wait_connections(&self, count: usize) {
        let mut watch = self.handle.watch_connections();
        tokio::time::timeout(WAIT, watch.wait_for(|live| *live == count))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "connection count stuck at {}, expected {count}",
                    self.handle.connections()
                )
            })
            .expect("server alive");
    }
}

pub async fn start<H: Handler>(handler: H, config: Config) -> TestServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound address");
    let (handle, task) = spawn_server(Server::new(handler).config(config), listener);
    TestServer { addr, handle, task }
}

pub async fn connect(url: &str) -> Client {
    let (client, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("handshake");
    assert_eq!(response.status(), 101);
    client
}

/// The next data message, skipping pings and pongs.
pub async fn next_data(client: &mut Client) -> WsMessage {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("valid message");
        match message {
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => return other,
        }
    }
}

/// Reads until the server's close frame, completes the close handshake, and returns the frame;
/// data messages before it are skipped.
pub async fn expect_close(client: &mut Client) -> CloseFrame {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("close in time");
        match message {
            Some(Ok(WsMessage::Close(Some(frame)))) => {
                // Polling on sends tungstenite's queued reply, as a browser would, and waits for
                // the server to hang up.
                tokio::time::timeout(WAIT, async { while client.next().await.is_some() {} })
                    .await
                    .expect("server ends the connection after the close handshake");
                return frame;
            }
            Some(Ok(WsMessage::Close(None))) => panic!("close frame without a code"),
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("error instead of a close frame: {error}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

/// Sends a text message and expects it back.
pub async fn round_trip(client: &mut Client, text: &str) {
    client.send(WsMessage::text(text)).await.expect("send");
    match next_data(client).await {
        WsMessage::Text(reply) => assert_eq!(reply.as_str(), text),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Opens a TCP connection and performs the upgrade by hand, for tests that then write raw frames.
pub async fn raw_connect(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let head = read_http_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "expected 101, got {head}");
    stream
}

/// Reads an HTTP response head byte by byte (so no frame bytes after it are consumed).
pub async fn read_http_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert!(
            read == 1,
            "connection closed during the response head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("ascii head")
}

/// Encodes one client frame: `first_byte` carries FIN, RSV and opcode; masked with a fixed key
/// unless `masked` is false.
pub fn raw_frame(first_byte: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![first_byte];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len @ 126..=65535 => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&key);
        frame.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, byte)| byte ^ key[i % 4]),
        );
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// One frame as the server sent it (servers never mask).
#[derive(Debug)]
pub struct ServerFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Reads one server frame from a raw socket; `None` at end of stream.
pub async fn read_raw_frame(stream: &mut TcpStream) -> Option<ServerFrame> {
    let mut header = [0u8; 2];
    tokio::time::timeout(WAIT, stream.read_exact(&mut header))
        .await
        .expect("frame in time")
        .ok()?;
    let mut len = u64::from(header[1] & 0x7f);
    if len == 126 {
        let mut ext = [0u8; 2];
        stream.read_exact(&mut ext).await.ok()?;
        len = u64::from(u16::from_be_bytes(ext));
    } else if len == 127 {
        let mut ext = [0u8; 8];
        stream.read_exact(&mut ext).await.ok()?;
        len = u64::from_be_bytes(ext);
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some(ServerFrame {
        opcode: header[0] & 0x0f,
        payload,
    })
}

/// Reads raw frames until a close frame; returns its code.
pub async fn read_raw_close_code(stream: &mut TcpStream) -> u16 {
    loop {
        let frame = read_raw_frame(stream)
            .await
            .expect("a close frame before the end of the stream");
        if frame.opcode == 0x8 {
            assert!(frame.payload.len() >= 2, "close frame without a code");
            return u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
        }
    }
}

/// Waits for the server to close the TCP connection (read returns 0 or an error).
pub async fn expect_eof(stream: &mut TcpStream) {
    let mut scratch = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("server closed the connection in time");
}

/// An echo handler that reports every `on_close` to the test, and can be told to fail or panic on
/// the messages `"fail"` and `"panic"`.
pub struct Probe {
    pub closes: tokio::sync::mpsc::Sender<wsgrpc::ws::CloseReason>,
}

impl Probe {
    pub fn new() -> (Probe, tokio::sync::mpsc::Receiver<wsgrpc::ws::CloseReason>) {
        let (closes, receiver) = tokio::sync::mpsc::channel(1024);
        (Probe { closes }, receiver)
    }
}

impl Handler for Probe {
    async fn on_message(
        &self,
        session: &mut wsgrpc::ws::Session,
        message: wsgrpc::ws::Message,
    ) -> wsgrpc::Result<()> {
        match message.as_text() {
            Some("fail") => Err(wsgrpc::Error::handler("asked to fail")),
            Some("panic") => panic!("asked to panic"),
            _ => session.send(message).await,
        }
    }

    async fn on_close(&self, _session: &mut wsgrpc::ws::Session, reason: wsgrpc::ws::CloseReason) {
        let _ = self.closes.send(reason).await;
    }
}

/// The next close reason the probe saw.
pub async fn next_close(
    closes: &mut tokio::sync::mpsc::Receiver<wsgrpc::ws::CloseReason>,
) -> wsgrpc::ws::CloseReason {
    tokio::time::timeout(WAIT, closes.recv())
        .await
        .expect("on_close in time")
        .expect("probe alive")
}

/// A client request for `url` with extra headers, for tests of upgrade guards.
pub fn request_with(
    url: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::http::Request<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let mut request = url.into_client_request().expect("valid url");
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    request
}

/// Connects with a prepared request, expecting `101`; returns the client and the response headers.
pub async fn connect_request(
    request: tokio_tungstenite::tungstenite::http::Request<()>,
) -> (Client, tokio_tungstenite::tungstenite::http::HeaderMap) {
    let (client, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .expect("handshake");
    assert_eq!(response.status(), 101);
    (client, response.headers().clone())
}

/// Connects with a prepared request, expecting an HTTP refusal; returns its status, headers and
/// body.
pub async fn refused(
    request: tokio_tungstenite::tungstenite::http::Request<()>,
) -> (u16, tokio_tungstenite::tungstenite::http::HeaderMap, String) {
    let result = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("answer in time");
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|body| String::from_utf8_lossy(body).into_owned())
                .unwrap_or_default();
            (response.status().as_u16(), response.headers().clone(), body)
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got 101"),
    }
}

/// The next data message as text.
pub async fn next_text(client: &mut Client) -> String {
    match next_data(client).await {
        WsMessage::Text(text) => text.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends a close frame and reads until the server ends the connection.
pub async fn close_client(client: &mut Client) {
    let _ = client.close(None).await;
    let _ = tokio::time::timeout(WAIT, async { while client.next().await.is_some() {} }).await;
}
