//! An in-memory harness for testing handlers: no sockets, no ports, real protocol.
//!
//! [`TestConnection`] runs a server-side [`Handler`] exactly as the server would (same connection
//! engine, same limits and close codes) over an in-memory duplex stream, with a WebSocket client
//! on the other end and helpers that wait with a timeout and fail the test with a clear message.
//! Enable it with the `test-util` feature, usually as a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! wsgrpc = { version = "0.1", features = ["test-util"] }
//! ```
//!
//! ```
//! use wsgrpc::testing::TestConnection;
//! use wsgrpc::ws::{CloseCode, Handler, Message, Session};
//!
//! struct Shout;
//!
//! impl Handler for Shout {
//!     async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
//!         match message.as_text() {
//!             Some("bye") => session.close(CloseCode::Normal, "see you").await,
//!             Some(text) => session.send(text.to_uppercase()).await,
//!             None => Err(wsgrpc::Error::handler("text only")),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut connection = TestConnection::open(Shout).await.expect("upgrade accepted");
//! connection.send("hello").await;
//! connection.expect_text("HELLO").await;
//! connection.send("bye").await;
//! connection.expect_close(CloseCode::Normal, "see you").await;
//! # }
//! ```

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::Request;
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{CloseFrame, Role};

use crate::ws::accept::Acceptor;
use crate::ws::{CloseCode, CloseReason, Config, Connections, Handler, Message, Rejection};

/// How long the `expect_*` helpers wait by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sets up a [`TestConnection`]: the upgrade request the handler sees, limits, and timeouts.
#[derive(Debug)]
pub struct TestConnectionBuilder {
    request: http::request::Builder,
    config: Config,
    timeout: Duration,
}

impl TestConnectionBuilder {
    /// The request path and query, e.g. `/rooms/blue?nick=ann`. Default `/`.
    #[must_use]
    pub fn path(mut self, path_and_query: &str) -> Self {
        self.request = self.request.uri(path_and_query);
        self
    }

    /// Adds a header to the upgrade request (an `Origin`, an `Authorization`, offered
    /// `Sec-WebSocket-Protocol`s, ...). The request is validated as the servers validate it,
    /// origin policy included: it carries `Host: wsgrpc.test` unless a `Host` is set here, so
    /// `Origin: http://wsgrpc.test` is the same origin and other origins are refused with `403`
    /// under the default [`Config::origin_policy`].
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// The connection limits the handler runs under. Default [`Config::default`].
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How long each `expect_*` helper waits. Default [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `on_upgrade`; if it accepts, starts the connection and returns the client end.
    ///
    /// # Panics
    ///
    /// If the configured request is not a valid HTTP request.
    pub async fn open<H: Handler>(self, handler: H) -> Result<TestConnection, Rejection> {
        let mut request = self.request;
        // RFC 9112 section 3.2: one Host, so a test's own `Host` replaces the default.
        if !request
            .headers_ref()
            .is_some_and(|headers| headers.contains_key(http::header::HOST))
        {
            request = request.header("host", "wsgrpc.test");
        }
        let request = request
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .expect("a valid test request");
        // The crate's one upgrade path, as on every server: validation, the origin policy,
        // `on_upgrade` with a panic answered by `500`.
        let acceptor = Acceptor::new(handler, self.config, Connections::new());
        let guard = acceptor.admit()?;
        let deadline = tokio::time::Instant::now() + acceptor.config().handshake_timeout;
        let accepted = acceptor.decide(request, None, guard, deadline).await?;
        let protocol = accepted.protocol().map(str::to_owned);
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server =
            tokio::spawn(async move { acceptor.run(server_io, accepted, Vec::new()).await });
        let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        Ok(TestConnection {
            client,
            server: Some(server),
            timeout: self.timeout,
            protocol,
        })
    }
}

/// The client end of a handler under test.
///
/// The `expect_*` methods panic with a descriptive message when what arrives is not what the test
/// expects, or nothing arrives within the timeout: they are assertions.
#[derive(Debug)]
pub struct TestConnection {
    client: WebSocketStream<DuplexStream>,
    server: Option<JoinHandle<CloseReason>>,
    timeout: Duration,
    protocol: Option<String>,
}

impl TestConnection {
    /// A builder to set the request path, headers, limits and timeout.
    pub fn builder() -> TestConnectionBuilder {
        TestConnectionBuilder {
            request: Request::get("/"),
            config: Config::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Opens a connection to `handler` with a plain `GET /` upgrade.
    pub async fn open<H: Handler>(handler: H) -> Result<TestConnection, Rejection> {
        TestConnection::builder().open(handler).await
    }

    /// The subprotocol `on_upgrade` chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Sends a message to the handler.
    ///
    /// # Panics
    ///
    /// If the connection is already closed.
    pub async fn send(&mut self, message: impl Into<Message>) {
        let message: Message = message.into();
        self.client
            .send(message.into())
            .await
            .expect("send to the handler under test");
    }

    /// The next message from the handler.
    ///
    /// # Panics
    ///
    /// If the connection closes or nothing arrives within the timeout.
    pub async fn expect_message(&mut self) -> Message {
        loop {
            match self.next_frame().await {
                tungstenite::Message::Text(text) => return Message::Text(text),
                tungstenite::Message::Binary(data) => return Message::Binary(data),
                tungstenite::Message::Close(frame) => {
                    panic!("expected a message, but the handler closed the connection: {frame:?}")
                }
                _ => continue,
            }
        }
    }

    /// Asserts that the next message is the text `expected`.
    ///
    /// # Panics
    ///
    /// If it is anything else.
    pub async fn expect_text(&mut self, expected: &str) {
        match self.expect_message().await {
            Message::Text(text) => {
                assert_eq!(text.as_str(), expected, "unexpected text from the handler")
            }
            Message::Binary(data) => panic!(
                "expected text {expected:?}, got {} binary bytes",
                data.len()
            ),
        }
    }

    /// Asserts that nothing arrives within `quiet`.
    ///
    /// # Panics
    ///
    /// If a message or a close arrives.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(Some(frame)) = tokio::time::timeout(quiet, self.client.next()).await {
            panic!("expected silence, got {frame:?}");
        }
    }

    /// Asserts that the handler closes the connection with `code` and `reason`, completes the
    /// closing handshake, and returns how the server side saw the end.
    ///
    /// # Panics
    ///
    /// If a data message arrives first, the code or reason differ, or nothing happens in time.
    pub async fn expect_close(&mut self, code: CloseCode, reason: &str) -> CloseReason {
        let frame = loop {
            match self.next_frame().await {
                tungstenite::Message::Close(frame) => break frame,
                tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
                other => panic!("expected close {code:?}, got {other:?}"),
            }
        };
        let frame = frame
            .unwrap_or_else(|| panic!("expected close {code:?}, got a close frame without a code"));
        assert_eq!(
            frame.code,
            code,
            "unexpected close code (reason {:?})",
            frame.reason.as_str()
        );
        assert_eq!(frame.reason.as_str(), reason, "unexpected close reason");
        self.finish().await
    }

    /// Closes from the client side and returns how the server side saw the end (what
    /// `on_close` received).
    pub async fn close(mut self, code: CloseCode, reason: &str) -> CloseReason {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.client.close(Some(frame)).await;
        self.finish().await
    }

    async fn next_frame(&mut self) -> tungstenite::Message {
        match tokio::time::timeout(self.timeout, self.client.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => panic!("connection to the handler failed: {error}"),
            Ok(None) => panic!("the connection ended without a close frame"),
            Err(_) => panic!("nothing from the handler within {:?}", self.timeout),
        }
    }

    /// Drives the client until the server side has finished, and returns its view of the close.
    async fn finish(&mut self) -> CloseReason {
        let timeout = self.timeout;
        let drain = async { while let Some(Ok(_)) = self.client.next().await {} };
        let _ = tokio::time::timeout(timeout, drain).await;
        let server = self
            .server
            .take()
            .expect("the connection is finished only once");
        match tokio::time::timeout(timeout, server).await {
            Ok(Ok(reason)) => reason,
            Ok(Err(error)) => panic!("the connection task failed: {error}"),
            Err(_) => panic!("the server side did not finish within {timeout:?}"),
        }
    }
}
