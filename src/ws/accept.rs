//! The one WebSocket upgrade path: every way a WebSocket is accepted goes through here.
//!
//! [`ws::Server`](crate::ws::Server) reads the HTTP/1.1 request head itself, the one-port
//! [`App`](crate::serve::App) and the [axum adapter](crate::serve::axum) get it from hyper, and the
//! in-memory harness (`wsgrpc::testing`) builds it; each then hands it to one [`Acceptor`], which
//! decides in one order:
//!
//! 1. **admission** ([`Acceptor::admit`]): at [`Config::max_connections`] or while shutting down,
//!    `503` with `Retry-After: 1`; otherwise the connection is counted from here, so connections
//!    still in `on_upgrade` count against the limit;
//! 2. **validation** ([`Upgrade::from_request`]: RFC 9112 section 3.2 and RFC 6455 section
//!    4.2.1), then the server-wide **origin policy** of [`Config`];
//! 3. **`on_upgrade`**, with panics contained (`500`, logged; the server goes on) and bounded by
//!    [`Config::handshake_timeout`] (`503`);
//! 4. the `101` ([`Accepted::response`]; `200` to an RFC 8441 extended CONNECT on HTTP/2, see
//!    [`Upgrade::http_version`]), and the engine runs the connection ([`Acceptor::run`]),
//!    registered for the graceful shutdown (close 1001).
//!
//! Only the transport around it differs: who writes the response and where the upgraded stream
//! comes from.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::ws::engine::serve_registered;
use crate::ws::{CloseReason, Config, ConnectionGuard, Connections, Handler, Rejection, Upgrade};

/// A handler with its limits and the set its connections are counted in: what decides upgrades
/// and runs the accepted connections.
#[derive(Debug)]
pub(crate) struct Acceptor<H> {
    handler: H,
    config: Config,
    connections: Connections,
}

/// An upgrade that passed every check: send [`response`](Self::response), then hand the stream
/// to [`Acceptor::run`].
#[derive(Debug)]
pub(crate) struct Accepted {
    upgrade: Upgrade,
    guard: ConnectionGuard,
}

impl Accepted {
    /// The `101 Switching Protocols` response.
    pub(crate) fn response(&self) -> Response<()> {
        self.upgrade.response()
    }

    /// The subprotocol `on_upgrade` chose, if any.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn protocol(&self) -> Option<&str> {
        self.upgrade.protocol()
    }
}

impl<H: Handler> Acceptor<H> {
    pub(crate) fn new(handler: H, config: Config, connections: Connections) -> Self {
        Acceptor {
            handler,
            config,
            connections,
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Step 1: counts the connection, or refuses it with `503` at capacity or while shutting down.
    pub(crate) fn admit(&self) -> Result<ConnectionGuard, Rejection> {
        if self.connections.is_closing() {
            return Err(unavailable("server shutting down\n"));
        }
        if self.connections.count() >= self.config.max_connections {
            tracing::debug!("websocket connection limit reached; answering 503");
            return Err(unavailable("server at connection capacity\n"));
        }
        Ok(self.connections.open())
    }

    /// Steps 2 and 3: validates the request, applies the origin policy and runs `on_upgrade`
    /// before `deadline`.
    pub(crate) async fn decide(
        &self,
        request: Request<()>,
        peer: Option<SocketAddr>,
        guard: ConnectionGuard,
        deadline: Instant,
    ) -> Result<Accepted, Rejection> {
        let mut upgrade = Upgrade::validate(request, peer, &self.config)?;
        let decided = AssertUnwindSafe(self.handler.on_upgrade(&mut upgrade)).catch_unwind();
        match tokio::time::timeout_at(deadline, decided).await {
            Ok(Ok(Ok(()))) => Ok(Accepted { upgrade, guard }),
            Ok(Ok(Err(rejection))) => {
                tracing::debug!(?peer, status = %rejection.status(), "websocket upgrade refused");
                Err(rejection)
            }
            Ok(Err(_)) => {
                tracing::error!(?peer, "on_upgrade panicked; answering 500");
                Err(Rejection::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error\n",
                ))
            }
            Err(_) => {
                tracing::debug!(
                    ?peer,
                    "on_upgrade passed the handshake timeout; answering 503"
                );
                Err(unavailable("websocket handshake timed out\n"))
            }
        }
    }

    /// Step 4: runs the accepted connection on its upgraded stream until it ends. `read_ahead` is
    /// what arrived after the request head (a client may send its first frame without waiting for
    /// the `101`).
    ///
    /// Not an `async fn`: it hands its arguments straight to the engine instead of keeping a copy
    /// of the upgrade in one more future layer, which every idle connection would carry.
    pub(crate) fn run<'a, S>(
        &'a self,
        io: S,
        accepted: Accepted,
        read_ahead: Vec<u8>,
    ) -> impl Future<Output = CloseReason> + Send + 'a
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'a,
    {
        let Accepted { upgrade, guard } = accepted;
        serve_registered(io, upgrade, read_ahead, &self.handler, &self.config, guard)
    }
}

/// `503` with `Retry-After: 1` (RFC 9110 section 15.6.4): capacity comes back as connections end.
pub(crate) fn unavailable(body: &'static str) -> Rejection {
    Rejection::new(StatusCode::SERVICE_UNAVAILABLE, body)
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}
