//! A WebSocket client that runs the same [`Handler`] as the server, with opt-in reconnect.
//!
//! ```no_run
//! use std::time::Duration;
//! use wsgrpc::client::{Client, Reconnect};
//! use wsgrpc::ws::{Handler, Message, Session};
//!
//! /// Subscribes on every (re)connect and prints what the server pushes.
//! struct Ticker;
//!
//! impl Handler for Ticker {
//!     async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
//!         session.send(r#"{"subscribe":"prices"}"#).await
//!     }
//!
//!     async fn on_message(&self, _session: &mut Session, message: Message) -> wsgrpc::Result<()> {
//!         println!("{}", message.as_text().unwrap_or("<binary>"));
//!         Ok(())
//!     }
//! }
//!
//! # async fn example() -> wsgrpc::Result<()> {
//! let client = Client::builder("ws://127.0.0.1:9001/ws")
//!     .header("authorization", "Bearer secret")
//!     .connect_timeout(Duration::from_secs(5))
//!     .reconnect(Reconnect::default())
//!     .connect(Ticker)
//!     .await?;
//! client.send("hello from another task").await?;
//! # Ok(())
//! # }
//! ```
//!
//! One handler type can sit on either side: the client drives its connection with the same
//! task-per-connection engine as the server (batched writes, bounded queue, keepalive, the same
//! close codes for protocol errors), only with client-side masking.
//!
//! # Reconnect
//!
//! Off by default. With a [`Reconnect`] policy, a connection that breaks or that the server closes
//! is re-established after an exponential, jittered backoff, and `on_open` runs again on the new
//! connection so a handler can re-subscribe. A close this side asked for ([`Client::close`], or the
//! handler closing its session) is final. The current state is observable through
//! [`Client::watch_state`]. Messages sent while disconnected follow [`WhileDisconnected`]: by
//! default they wait in the bounded outgoing queue and go out on the next connection.
//!
//! Dropping every [`Client`] handle closes the connection (code 1000) and stops reconnecting.

mod handshake;
mod reconnect;
mod transport;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{Fuse, FusedFuture};
use http::Uri;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tungstenite::protocol::{CloseFrame, Role};

pub use reconnect::{Reconnect, WhileDisconnected};

use crate::error::{Error, Result};
use crate::ws::engine::queue;
use crate::ws::engine::{Link, Queue, run};
use crate::ws::session::{Outgoing, close_message, enqueue, try_enqueue};
use crate::ws::{CloseCode, CloseReason, Config, Extensions, Handler, Message, Session, Utf8Bytes};
use transport::Transport;

/// Where a client's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The first connection attempt is under way.
    Connecting,
    /// Connected; messages flow.
    Connected {
        /// The server's address.
        peer_addr: Option<SocketAddr>,
    },
    /// Waiting `delay` before reconnect attempt number `attempt` (1-based).
    Reconnecting {
        /// The attempt about to be made.
        attempt: u32,
        /// How long until it is made.
        delay: Duration,
    },
    /// Finished for good: closed by this side, out of reconnect attempts, or never connected.
    Closed {
        /// Why the last connection ended, if there was one.
        reason: Option<CloseReason>,
    },
}

/// A handle to a running client connection. Cheap to clone; usable from any task.
///
/// Sending goes through the connection's bounded outgoing queue, exactly like
/// [`SessionHandle`](crate::ws::SessionHandle) on the server side.
#[derive(Clone)]
pub struct Client {
    outgoing: queue::Sender<Outgoing>,
    state: watch::Receiver<ConnectionState>,
    while_disconnected: WhileDisconnected,
    // When the last handle is dropped this sender goes with it, which the connection task takes as
    // the signal to close.
    _owner: Arc<oneshot::Sender<()>>,
}

impl Client {
    /// A builder for a client of `url` (`ws://host[:port]/path?query`, or `wss://` with the
    /// `tls` feature).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into())
    }

    /// Connects to `url` with default settings and runs `handler` on the connection.
    pub async fn connect<H: Handler>(url: impl Into<String>, handler: H) -> Result<Client> {
        Client::builder(url).connect(handler).await
    }

    /// Queues a message, waiting while the queue is full.
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.check_connected()?;
        let message: Message = message.into();
        enqueue(&self.outgoing, message.into()).await
    }

    /// Queues a message if there is room right now.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<()> {
        self.check_connected()?;
        let message: Message = message.into();
        try_enqueue(&self.outgoing, message.into())
    }

    /// Closes the connection after the messages already queued, and stops reconnecting.
    pub async fn close(&self, code: CloseCode, reason: impl Into<Utf8Bytes>) -> Result<()> {
        enqueue(&self.outgoing, close_message(code, reason.into())).await
    }

    /// The current state.
    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every state change (for a UI or a health check).
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Waits until the client has finished for good, and returns why its last connection ended.
    pub async fn closed(&self) -> Option<CloseReason> {
        let mut state = self.state.clone();
        let finished = state
            .wait_for(|state| matches!(state, ConnectionState::Closed { .. }))
            .await;
        match finished.as_deref() {
            Ok(ConnectionState::Closed { reason }) => reason.clone(),
            _ => None,
        }
    }

    fn check_connected(&self) -> Result<()> {
        if self.while_disconnected == WhileDisconnected::Fail
            && !matches!(*self.state.borrow(), ConnectionState::Connected { .. })
        {
            return Err(Error::NotConnected);
        }
        Ok(())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

/// Configures and opens a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    headers: HeaderMap,
    invalid_header: Option<String>,
    protocols: Vec<String>,
    connect_timeout: Duration,
    config: Config,
    reconnect: Option<Reconnect>,
    while_disconnected: WhileDisconnected,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl ClientBuilder {
    fn new(url: String) -> Self {
        ClientBuilder {
            url,
            headers: HeaderMap::new(),
            invalid_header: None,
            protocols: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            config: Config::default(),
            reconnect: None,
            while_disconnected: WhileDisconnected::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Adds a header to the upgrade request (authentication, cookies, ...). An invalid name or
    /// value makes [`connect`](Self::connect) fail with [`Error::InvalidHeader`].
    #[must_use]
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.invalid_header = Some(format!("header #{}", self.headers.len() + 1)),
        }
        self
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call again to offer several, in order of
    /// preference. The one the server chose is on the [`Session`].
    #[must_use]
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Time allowed for TCP connect, TLS and the upgrade together. Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Limits, keepalive and queue size, as on the server. Server-only fields are ignored.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Reconnects after the connection breaks, per `policy`. Off by default.
    #[must_use]
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// What sending does while disconnected. Default [`WhileDisconnected::Buffer`].
    #[must_use]
    pub fn while_disconnected(mut self, policy: WhileDisconnected) -> Self {
        self.while_disconnected = policy;
        self
    }

    /// TLS settings for `wss://` (trusted roots, client certificates). Default: the Mozilla root
    /// certificates from `webpki-roots`.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Connects and starts running `handler` on a background task.
    ///
    /// Returns once the first connection is open. If it cannot be opened, this fails with the
    /// reason, even when a reconnect policy is set: a client that never connected has nothing to
    /// resume, and the caller usually wants to know at once.
    pub async fn connect<H: Handler>(self, handler: H) -> Result<Client> {
        if let Some(header) = &self.invalid_header {
            return Err(Error::InvalidHeader(header.clone()));
        }
        let target = Target::parse(&self.url)?;
        let (sender, receiver) = queue::channel(self.config.outgoing_queue);
        let (state_sender, state) = watch::channel(ConnectionState::Connecting);
        let (owner, abandoned) = oneshot::channel();
        let client = Client {
            outgoing: sender.clone(),
            state,
            while_disconnected: self.while_disconnected,
            _owner: Arc::new(owner),
        };
        let first = self.open(&target).await?;
        // Connected from the caller's point of view as soon as `connect` returns.
        state_sender.send_replace(ConnectionState::Connected {
            peer_addr: first.peer_addr,
        });
        let driver = Driver {
            builder: self,
            target,
            sender,
            receiver,
            state: state_sender,
            abandoned: abandoned.fuse(),
        };
        tokio::spawn(driver.run(first, handler));
        Ok(client)
    }

    /// One connection attempt: TCP, TLS, upgrade, bounded by the connect timeout.
    async fn open(&self, target: &Target) -> Result<Opened> {
        let attempt = async {
            let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
            let _ = stream.set_nodelay(self.config.tcp_nodelay);
            let peer_addr = stream.peer_addr().ok();
            let mut transport = self.secure(stream, target).await?;
            let accepted = handshake::handshake(
                &mut transport,
                &target.uri,
                &self.headers,
                &self.protocols,
                &self.config,
            )
            .await?;
            Ok(Opened {
                transport,
                accepted,
                peer_addr,
            })
        };
        tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| Error::ConnectTimeout(self.connect_timeout))?
    }

    #[cfg(feature = "tls")]
    async fn secure(&self, stream: TcpStream, target: &Target) -> Result<Transport> {
        if !target.secure {
            return Ok(Transport::Plain(stream));
        }
        let config = match &self.tls {
            Some(config) => config.clone(),
            None => default_tls_config()?,
        };
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|_| Error::InvalidUrl(self.url.clone()))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        Ok(Transport::Tls(Box::new(
            connector.connect(name, stream).await?,
        )))
    }

    #[cfg(not(feature = "tls"))]
    async fn secure(&self, stream: TcpStream, target: &Target) -> Result<Transport> {
        if target.secure {
            return Err(Error::Tls(
                "wss:// needs the `tls` feature of wsgrpc".into(),
            ));
        }
        Ok(Transport::Plain(stream))
    }
}

#[cfg(feature = "tls")]
fn default_tls_config() -> Result<Arc<rustls::ClientConfig>> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls(error.into()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone)]
struct Target {
    uri: Uri,
    host: String,
    port: u16,
    secure: bool,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        let invalid = || Error::InvalidUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| invalid())?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(invalid()),
        };
        let host = uri.host().ok_or_else(invalid)?;
        // `Uri::host` keeps the brackets of an IPv6 literal; sockets want the bare address.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        Ok(Target {
            uri,
            host,
            port,
            secure,
        })
    }
}

/// An open connection that has not started running yet.
struct Opened {
    transport: Transport,
    accepted: handshake::Accepted,
    peer_addr: Option<SocketAddr>,
}

/// The background task behind a [`Client`]: runs connections, reconnects, publishes state.
struct Driver {
    builder: ClientBuilder,
    target: Target,
    /// Kept to attach each new session to the same queue.
    sender: queue::Sender<Outgoing>,
    receiver: queue::Receiver<Outgoing>,
    state: watch::Sender<ConnectionState>,
    abandoned: Fuse<oneshot::Receiver<()>>,
}

impl Driver {
    async fn run<H: Handler>(mut self, first: Opened, handler: H) {
        let mut opened = first;
        loop {
            let reason = self.serve(opened, &handler).await;
            let final_close =
                reason.closed_by == crate::ws::ClosedBy::Local && self.receiver.is_closed();
            let Some(policy) = self.builder.reconnect.clone() else {
                return self.finish(Some(reason));
            };
            if final_close || self.abandoned.is_terminated() {
                return self.finish(Some(reason));
            }
            tracing::debug!(%reason, "websocket client disconnected; reconnecting");
            match self.reconnect(&policy).await {
                Some(next) => opened = next,
                None => return self.finish(Some(reason)),
            }
        }
    }

    /// Runs one connection to its end.
    async fn serve<H: Handler>(&mut self, opened: Opened, handler: &H) -> CloseReason {
        let Opened {
            transport,
            accepted,
            peer_addr,
        } = opened;
        let (session, forced_close) = Session::attach(
            accepted.request,
            peer_addr,
            accepted.protocol,
            Extensions::new(),
            self.sender.clone(),
        );
        self.state
            .send_replace(ConnectionState::Connected { peer_addr });
        let link = Link {
            role: Role::Client,
            session,
            outgoing: Queue::Shared(&mut self.receiver),
            read_ahead: accepted.read_ahead,
            shutdown: Some(&mut self.abandoned),
            shutdown_frame: CloseFrame {
                code: CloseCode::Normal,
                reason: Utf8Bytes::default(),
            },
            forced_close,
            compression: accepted.compression,
        };
        run(transport, link, handler, &self.builder.config).await
    }

    /// Waits and retries per `policy` until a connection opens, the policy gives up, or every
    /// handle is dropped.
    async fn reconnect(&mut self, policy: &Reconnect) -> Option<Opened> {
        let down_since = Instant::now();
        let mut failed = 0u32;
        let mut delays = policy.delays();
        loop {
            // The sequence ends after `max_attempts`; `allows` also checks `max_elapsed`.
            let next = delays.next();
            let Some(delay) = next.filter(|_| policy.allows(failed, down_since.elapsed())) else {
                tracing::warn!(attempts = failed, "websocket client gave up reconnecting");
                return None;
            };
            let attempt = failed + 1;
            self.state
                .send_replace(ConnectionState::Reconnecting { attempt, delay });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = &mut self.abandoned => return None,
            }
            match self.builder.open(&self.target).await {
                Ok(opened) => return Some(opened),
                Err(error) => {
                    tracing::debug!(%error, attempt, "websocket reconnect attempt failed");
                    failed = attempt;
                }
            }
        }
    }

    fn finish(self, reason: Option<CloseReason>) {
        self.state.send_replace(ConnectionState::Closed { reason });
    }
}
