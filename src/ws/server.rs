//! The accept loop: TCP connections in, one task per WebSocket connection, graceful shutdown.
//!
//! ```no_run
//! use wsgrpc::ws::{handler_fn, Message, Server, SessionHandle};
//!
//! # async fn example() -> wsgrpc::Result<()> {
//! let server = Server::bind("127.0.0.1:9001").await?;
//! println!("listening on ws://{}", server.local_addr());
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! server.serve_with_shutdown(echo, wsgrpc::shutdown_signal()).await
//! # }
//! ```
//!
//! Shutdown happens in order: stop accepting, send close 1001 to every open connection, wait up to
//! [`Config::shutdown_timeout`] for their close handshakes (and `on_close` hooks), then drop what is
//! left. A [`ServerHandle`] reads the live connection count and can trigger the same shutdown from
//! anywhere.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::error::Result;
use crate::ws::connections::{ConnectionGuard, Connections};
use crate::ws::engine::serve_registered;
use crate::ws::handshake::{HeadError, read_request, write_rejection, write_response};
use crate::ws::{Config, Handler, Rejection, Upgrade};

/// Refusals (503 at capacity, and the handshake errors of those) answered at once; sockets beyond
/// this are closed without an answer, so a flood cannot turn refusals into unbounded tasks.
const MAX_CONCURRENT_REFUSALS: usize = 128;

/// A WebSocket server bound to a TCP listener.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Config,
    tls: Option<Tls>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds a listener to `addr` (`"127.0.0.1:0"` picks a free port; read it back with
    /// [`local_addr`](Self::local_addr)).
    pub async fn bind(addr: impl ToSocketAddrs) -> Result<Self> {
        Server::from_listener(TcpListener::bind(addr).await?)
    }

    /// Serves on an already bound listener.
    pub fn from_listener(listener: TcpListener) -> Result<Self> {
        let local_addr = listener.local_addr()?;
        Ok(Server {
            listener,
            local_addr,
            config: Config::default(),
            tls: None,
            shared: Arc::new(Shared::new()),
        })
    }

    /// Replaces the connection limits and timeouts.
    #[must_use]
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves `wss://`: every accepted connection does a TLS handshake (within
    /// [`Config::handshake_timeout`]) before the upgrade.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to observe and stop the server once it is serving.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
            local_addr: self.local_addr,
        }
    }

    /// Serves `handler` until [`ServerHandle::shutdown`] is called.
    pub async fn serve<H: Handler>(self, handler: H) -> Result<()> {
        self.serve_with_shutdown(handler, std::future::pending())
            .await
    }

    /// Serves `handler` until `signal` completes (or [`ServerHandle::shutdown`] is called), then
    /// shuts down gracefully: stop accepting, send close 1001 to every open connection, wait up to
    /// [`Config::shutdown_timeout`] for their close handshakes and `on_close` hooks, then drop what
    /// is left (those connections' `on_close` does not run). Keep `shutdown_timeout` above
    /// [`Config::close_timeout`] so a slow peer cannot cut the others' handshakes short.
    pub async fn serve_with_shutdown<H, F>(self, handler: H, signal: F) -> Result<()>
    where
        H: Handler,
        F: Future<Output = ()> + Send,
    {
        let Server {
            listener,
            local_addr,
            config,
            tls,
            shared,
        } = self;
        let handler = Arc::new(handler);
        let config = Arc::new(config);
        let refusals = Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS));
        let mut tasks = JoinSet::new();
        let mut signal = pin!(signal);
        let mut trigger = shared.shutdown.subscribe();
        tracing::info!(%local_addr, "websocket server listening");

        loop {
            tokio::select! {
                () = &mut signal => break,
                () = stop_requested(&mut trigger) => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if shared.live_connections() >= config.max_connections {
                            refuse_at_capacity(stream, &config, &refusals, &mut tasks);
                        } else {
                            let guard = shared.connections.open();
                            tasks.spawn(connection(stream, peer, handler.clone(), config.clone(), tls.clone(), guard));
                        }
                    }
                    Err(error) => accept_failed(error).await,
                },
            }
        }

        drop(listener);
        let signalled = shared.connections.close_all();
        tracing::info!(connections = signalled, "websocket server shutting down");
        let drained = tokio::time::timeout(config.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = tasks.len(),
                "shutdown timeout passed; dropping remaining connections"
            );
            tasks.shutdown().await;
        }
        Ok(())
    }
}

/// Observes and controls a running [`Server`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections currently served (from accept until their task has fully ended).
    pub fn connections(&self) -> usize {
        self.shared.live_connections()
    }

    /// A receiver that sees every change of the connection count, to wait for a given count
    /// without polling.
    pub fn watch_connections(&self) -> watch::Receiver<usize> {
        self.shared.connections.watch()
    }

    /// Starts a graceful shutdown, as if the server's shutdown signal had completed.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// State shared by the accept loop, the connection tasks and the handles.
#[derive(Debug)]
struct Shared {
    connections: Connections,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            connections: Connections::new(),
            shutdown: watch::Sender::new(false),
        }
    }

    fn live_connections(&self) -> usize {
        self.connections.count()
    }
}

/// One accepted socket: TLS (if configured) and the upgrade under the handshake timeout, then the
/// WebSocket connection.
async fn connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    config: Arc<Config>,
    tls: Option<Tls>,
    guard: ConnectionGuard,
) {
    if config.tcp_nodelay {
        let _ = stream.set_nodelay(true);
    }
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    match tls {
        None => upgrade_and_run(stream, peer, &*handler, &config, deadline, guard).await,
        #[cfg(feature = "tls")]
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                upgrade_and_run(stream, peer, &*handler, &config, deadline, guard).await
            }
            Ok(Err(error)) => tracing::debug!(%peer, %error, "tls handshake failed"),
            Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
        },
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
    }
}

async fn upgrade_and_run<S, H>(
    mut stream: S,
    peer: SocketAddr,
    handler: &H,
    config: &Config,
    deadline: tokio::time::Instant,
    mut guard: ConnectionGuard,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    // Boxed for the same reason as the close sequence: it runs once, and its state (the request
    // parser, `on_upgrade`) should not inflate every open connection's future.
    let handshake = Box::pin(handshake(&mut stream, peer, handler, config));
    let (upgrade, read_ahead) = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return,
        Err(_) => {
            tracing::debug!(%peer, "websocket handshake timed out");
            return;
        }
    };
    serve_registered(stream, upgrade, read_ahead, handler, config, &mut guard).await;
}

/// The TLS acceptor of a server, when it has one.
#[cfg(feature = "tls")]
type Tls = tokio_rustls::TlsAcceptor;
/// Without the `tls` feature a server has no acceptor: an uninhabited stand-in.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
enum Tls {}

/// Reads the upgrade request, lets the handler accept or refuse it, and answers.
async fn handshake<S, H>(
    stream: &mut S,
    peer: SocketAddr,
    handler: &H,
    config: &Config,
) -> Option<(Upgrade, Vec<u8>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let (request, read_ahead) = match read_request(stream, config.max_request_head_size).await {
        Ok(head) => head,
        Err(HeadError::Io(error)) => {
            tracing::debug!(%peer, %error, "connection ended before a complete upgrade request");
            return None;
        }
        Err(HeadError::Reject(rejection)) => {
            let _ = write_rejection(stream, &rejection).await;
            return None;
        }
    };
    let decided = match Upgrade::from_request(request, Some(peer)) {
        Ok(mut upgrade) => match AssertUnwindSafe(handler.on_upgrade(&mut upgrade))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => Ok(upgrade),
            Ok(Err(rejection)) => Err(rejection),
            Err(_) => {
                tracing::error!(%peer, "on_upgrade panicked; answering 500");
                Err(Rejection::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error\n",
                ))
            }
        },
        Err(rejection) => Err(rejection),
    };
    match decided {
        Ok(upgrade) => match write_response(stream, &upgrade.response()).await {
            Ok(()) => Some((upgrade, read_ahead)),
            Err(_) => None,
        },
        Err(rejection) => {
            tracing::debug!(%peer, status = %rejection.status(), "websocket upgrade refused");
            let _ = write_rejection(stream, &rejection).await;
            None
        }
    }
}

/// Answers a connection over `max_connections` with 503 once its request head is in.
fn refuse_at_capacity(
    mut stream: TcpStream,
    config: &Arc<Config>,
    refusals: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return; // dropping the stream closes it
    };
    let config = config.clone();
    tasks.spawn(async move {
        let _permit = permit;
        let refuse = async {
            // Reading the head first matters: closing a socket with unread input sends a reset,
            // and the client would see that instead of the 503.
            if read_request(&mut stream, config.max_request_head_size)
                .await
                .is_ok()
            {
                let rejection = Rejection::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server at connection capacity\n",
                )
                .with_header(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                let _ = write_rejection(&mut stream, &rejection).await;
            }
        };
        let _ = tokio::time::timeout(config.handshake_timeout, refuse).await;
    });
}

/// Completes once [`ServerHandle::shutdown`] was called (or every handle and the server are gone).
async fn stop_requested(trigger: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here rather than hold it in `select!`.
    let _ = trigger.wait_for(|stop| *stop).await.map(drop);
}

/// Accept errors: per-connection ones are skipped; running out of file descriptors backs off
/// briefly instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; backing off");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn serving_future_is_send_so_it_can_be_spawned() {
        let server = Server::bind("127.0.0.1:0").await.expect("bind");
        struct Nothing;
        impl Handler for Nothing {}
        let serving = server.serve(Nothing);
        assert_send(&serving);
    }
}
