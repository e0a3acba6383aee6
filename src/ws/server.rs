//! The WebSocket server: a handler, its [`Config`] and optional TLS, served on any
//! [`Listener`](crate::net::Listener) until a shutdown future completes.
//!
//! ```no_run
//! use wsgrpc::ws::{handler_fn, Message, Server, SessionHandle};
//!
//! # async fn example() -> wsgrpc::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! println!("listening on ws://{}", listener.local_addr()?);
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! Server::new(echo).serve(listener, wsgrpc::shutdown_signal()).await
//! # }
//! ```
//!
//! The server reads each HTTP/1.1 request head itself (bounded by
//! [`Config::max_request_head_size`]) and hands it to the crate's one upgrade path, so `on_upgrade`
//! can be async and refuse with any status. Shutdown happens in order: stop accepting, send close
//! 1001 to every open connection, wait up to [`Config::shutdown_timeout`] for their close
//! handshakes (and `on_close` hooks), then drop what is left.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::Result;
use crate::net::serve::{AcceptOptions, Connector, accept_until, drain};
use crate::net::{Listener, Shutdown};
use crate::ws::accept::{Accepted, Acceptor};
use crate::ws::connections::ConnectionGuard;
use crate::ws::handshake::{HeadError, read_request, write_rejection, write_response};
use crate::ws::{Config, Connections, Handler};

/// Refusals (503 at capacity, and the handshake errors of those) answered at once; sockets beyond
/// this are closed without an answer, so a flood cannot turn refusals into unbounded tasks.
const MAX_CONCURRENT_REFUSALS: usize = 128;

/// A WebSocket server: a handler with its limits, ready to serve on a listener.
#[derive(Debug)]
pub struct Server<H> {
    handler: H,
    config: Config,
    connections: Connections,
    #[cfg(feature = "tls")]
    tls: Option<crate::net::TlsConfig>,
}

impl<H: Handler> Server<H> {
    /// A server running `handler` on every connection, with the default [`Config`].
    pub fn new(handler: H) -> Self {
        Server {
            handler,
            config: Config::default(),
            connections: Connections::new(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Replaces the connection limits and timeouts.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves `wss://`: every accepted connection does a TLS handshake (within
    /// [`Config::handshake_timeout`]) before the upgrade. ALPN: `http/1.1` unless the
    /// configuration offers protocols of its own.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls(mut self, tls: impl Into<crate::net::TlsConfig>) -> Self {
        self.tls = Some(tls.into());
        self
    }

    /// The set the server's connections are counted in: read or watch the live count (from
    /// accept until a connection's task has ended).
    pub fn connections(&self) -> Connections {
        self.connections.clone()
    }

    /// Serves `listener` until `shutdown` completes, then shuts down gracefully: stop accepting,
    /// send close 1001 to every open connection, wait up to [`Config::shutdown_timeout`] for their
    /// close handshakes and `on_close` hooks, then drop what is left (those connections'
    /// `on_close` does not run). Keep `shutdown_timeout` above [`Config::close_timeout`] so a slow
    /// peer cannot cut the others' handshakes short. Pass [`std::future::pending()`] to serve
    /// until the task is dropped.
    ///
    /// Errors of single connections (resets, bad requests, failed TLS handshakes) are logged, not
    /// returned.
    pub async fn serve<L, F>(self, listener: L, shutdown: F) -> Result<()>
    where
        L: Listener,
        F: Future<Output = ()> + Send,
    {
        let Server {
            handler,
            config,
            connections,
            #[cfg(feature = "tls")]
            tls,
        } = self;
        let options = AcceptOptions {
            nodelay: config.tcp_nodelay,
            keepalive: None,
            #[cfg(feature = "tls")]
            tls: tls.map(|tls| tls.acceptor(&[crate::net::tls::HTTP_1_1])),
            #[cfg(not(feature = "tls"))]
            tls: None,
            tls_handshake_timeout: config.handshake_timeout,
        };
        let shutdown_timeout = config.shutdown_timeout;
        let connector = Arc::new(WebSocketConnector {
            acceptor: Acceptor::new(handler, config, connections.clone()),
            refusals: Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS)),
        });
        let mut tasks = JoinSet::new();
        let stop = Shutdown::new();
        let listener =
            accept_until(listener, &connector, &options, shutdown, &stop, &mut tasks).await;
        drop(listener);
        // Handshakes still in progress are dropped; open connections get 1001 below.
        stop.trigger();
        let signalled = connections.close_all();
        tracing::info!(connections = signalled, "websocket server shutting down");
        drain(&mut tasks, shutdown_timeout, "websocket server").await;
        Ok(())
    }
}

/// The WebSocket side of the accept loop.
struct WebSocketConnector<H> {
    acceptor: Acceptor<H>,
    refusals: Arc<Semaphore>,
}

/// Decided at accept time: a counted connection, or a refusal with its permit.
enum Admission {
    Counted(ConnectionGuard),
    Refused(OwnedSemaphorePermit, crate::ws::Rejection),
}

impl<H: Handler> Connector for WebSocketConnector<H> {
    type Ticket = Admission;

    fn admit(&self, _peer: Option<SocketAddr>) -> Option<Admission> {
        match self.acceptor.admit() {
            Ok(guard) => Some(Admission::Counted(guard)),
            Err(rejection) => {
                // No permit: dropping the socket closes it without an answer.
                let permit = self.refusals.clone().try_acquire_owned().ok()?;
                Some(Admission::Refused(permit, rejection))
            }
        }
    }

    async fn serve<Io>(
        self: Arc<Self>,
        mut io: Io,
        peer: Option<SocketAddr>,
        admission: Admission,
        _shutdown: Shutdown,
    ) where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let acceptor = &self.acceptor;
        let config = acceptor.config();
        let deadline = Instant::now() + config.handshake_timeout;
        match admission {
            Admission::Counted(guard) => {
                // Boxed: it runs once, and its state (the request parser, `on_upgrade`)
                // should not inflate every open connection's future.
                let handshake = Box::pin(handshake(&mut io, peer, acceptor, guard, deadline));
                // Taken out of the `match` before the connection runs: a scrutinee would stay in
                // the task's state (the upgrade, some 500 bytes) for the connection's lifetime.
                let (accepted, read_ahead) =
                    match tokio::time::timeout_at(deadline, handshake).await {
                        Ok(Some(accepted)) => accepted,
                        Ok(None) => return,
                        Err(_) => {
                            tracing::debug!(?peer, "websocket handshake timed out");
                            return;
                        }
                    };
                acceptor.run(io, accepted, read_ahead).await;
            }
            Admission::Refused(permit, rejection) => {
                let _permit = permit;
                let refuse = async {
                    // Reading the head first matters: closing a socket with unread input
                    // sends a reset, and the client would see that instead of the 503.
                    if read_request(&mut io, config.max_request_head_size)
                        .await
                        .is_ok()
                    {
                        let _ = write_rejection(&mut io, &rejection).await;
                    }
                };
                let _ = tokio::time::timeout_at(deadline, refuse).await;
            }
        }
    }
}

/// Reads the upgrade request, lets the acceptor decide, and answers.
async fn handshake<S, H>(
    stream: &mut S,
    peer: Option<SocketAddr>,
    acceptor: &Acceptor<H>,
    guard: ConnectionGuard,
    deadline: Instant,
) -> Option<(Accepted, Vec<u8>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let limit = acceptor.config().max_request_head_size;
    let (request, read_ahead) = match read_request(stream, limit).await {
        Ok(head) => head,
        Err(HeadError::Io(error)) => {
            tracing::debug!(?peer, %error, "connection ended before a complete upgrade request");
            return None;
        }
        Err(HeadError::Reject(rejection)) => {
            let _ = write_rejection(stream, &rejection).await;
            return None;
        }
    };
    match acceptor.decide(request, peer, guard, deadline).await {
        Ok(accepted) => match write_response(stream, &accepted.response()).await {
            Ok(()) => Some((accepted, read_ahead)),
            Err(_) => None,
        },
        Err(rejection) => {
            let _ = write_rejection(stream, &rejection).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn serving_future_is_send_so_it_can_be_spawned() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        struct Nothing;
        impl Handler for Nothing {}
        let serving = Server::new(Nothing).serve(listener, std::future::pending());
        assert_send(&serving);
    }
}
