//! An RFC 8441 client for the WebSocket-over-HTTP/2 tests: hyper's HTTP/2 client doing extended
//! CONNECT, and tokio-tungstenite speaking WebSocket frames over the stream it opens.
//!
//! Included with `#[path = "common/h2.rs"] mod h2_common;`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

pub const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket running on one HTTP/2 stream.
pub type H2Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// One cleartext HTTP/2 connection (prior knowledge) whose server has been seen to advertise
/// `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 section 3).
pub struct H2Connection {
    /// `http://host:port` or `https://host:port`: the scheme and authority of every request.
    base: String,
    sender: SendRequest<Empty<Bytes>>,
}

impl H2Connection {
    /// Connects, and proves the server's SETTINGS arrived with extended CONNECT enabled: one
    /// ordinary request is exchanged first (the server's SETTINGS frame precedes any response),
    /// while this task drives the connection, so the setting can be read back from it.
    pub async fn open(addr: SocketAddr) -> H2Connection {
        let stream = TcpStream::connect(addr).await.expect("connect");
        H2Connection::over(stream, format!("http://{addr}")).await
    }

    /// The same over an established stream (TLS with ALPN `h2`, say); `base` is the scheme and
    /// authority the requests name.
    pub async fn over<Io>(io: Io, base: String) -> H2Connection
    where
        Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .expect("http/2 handshake");
        let mut connection = Box::pin(connection);
        let probe = Request::get(format!("{base}/settings-probe"))
            .body(Empty::new())
            .expect("valid");
        let exchange = sender.send_request(probe);
        tokio::time::timeout(WAIT, async {
            tokio::select! {
                response = exchange => { response.expect("probe response"); }
                result = &mut connection => panic!("connection ended early: {result:?}"),
            }
        })
        .await
        .expect("probe in time");
        assert!(
            connection.is_extended_connect_protocol_enabled(),
            "server does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL"
        );
        tokio::spawn(connection);
        H2Connection { base, sender }
    }

    /// Sends an extended CONNECT for `path` with `:protocol` `protocol` (none when `None`) and
    /// the given extra headers, and returns the response head (its body is empty or a short
    /// refusal, read whole).
    pub async fn connect(
        &mut self,
        path: &str,
        protocol: Option<&'static str>,
        headers: &[(&str, &str)],
    ) -> Response<hyper::body::Incoming> {
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .uri(format!("{}{path}", self.base));
        if let Some(protocol) = protocol {
            request = request.extension(hyper::ext::Protocol::from_static(protocol));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new()).expect("valid request");
        tokio::time::timeout(WAIT, async {
            self.sender.ready().await.expect("connection ready");
            self.sender.send_request(request).await
        })
        .await
        .expect("response in time")
        .expect("response")
    }

    /// Opens a WebSocket on `path` and checks the RFC 8441 answer (`200`, no
    /// `Sec-WebSocket-Accept`).
    pub async fn websocket(&mut self, path: &str) -> H2Socket {
        let mut response = self
            .connect(path, Some("websocket"), &[("sec-websocket-version", "13")])
            .await;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            panic!("extended CONNECT refused with {status}: {body:?}");
        }
        assert!(
            !response.headers().contains_key("sec-websocket-accept"),
            "RFC 8441 section 5: no accept key on HTTP/2"
        );
        let upgraded = tokio::time::timeout(WAIT, hyper::upgrade::on(&mut response))
            .await
            .expect("upgrade in time")
            .expect("stream upgraded");
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await
    }
}

/// The status and body of a refused extended CONNECT.
pub async fn refusal(response: Response<hyper::body::Incoming>) -> (StatusCode, Bytes) {
    let status = response.status();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    (status, body)
}

/// The next text message, skipping pings and pongs.
pub async fn next_text(socket: &mut H2Socket) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("valid message");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Sends `text` and expects it echoed.
pub async fn round_trip(socket: &mut H2Socket, text: &str) {
    socket.send(Message::text(text)).await.expect("send");
    assert_eq!(next_text(socket).await, text);
}

/// Reads until the server's close frame, completes the close handshake and returns the frame.
pub async fn expect_close(socket: &mut H2Socket) -> CloseFrame {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("close in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                tokio::time::timeout(WAIT, async { while socket.next().await.is_some() {} })
                    .await
                    .expect("server ends the stream after the close handshake");
                return frame;
            }
            Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("error instead of a close frame: {error}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}
