//! Mounting a wsgrpc [`Handler`] and the gRPC services in an axum app you already have.
//!
//! ```no_run
//! use wsgrpc::grpc::GrpcServer;
//! use wsgrpc::serve::axum::{WebSocket, grpc_router};
//! use wsgrpc::ws::{handler_fn, Message, SessionHandle};
//!
//! # async fn example() -> wsgrpc::Result<()> {
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let websocket = WebSocket::new(echo);
//! let connections = websocket.connections().clone();
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .route("/ws", websocket.into_route())
//!     .merge(grpc_router(GrpcServer::new().into_parts().await?));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async move {
//!         wsgrpc::shutdown_signal().await;
//!         // axum waits for HTTP connections, not for upgraded ones: close those here.
//!         connections.shutdown(std::time::Duration::from_secs(10)).await;
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`WebSocket::into_route`] (or [`websocket`]) is an axum route that validates the upgrade with
//! [`Upgrade::from_request`](crate::ws::Upgrade::from_request), runs `on_upgrade` (its
//! [`Rejection`](crate::ws::Rejection) becomes the response), answers `101`, and on hyper's upgraded
//! stream runs the handler with [`serve_connection_with`](crate::ws::serve_connection_with): the
//! same limits, keepalive, close codes and `max_connections` (`503`) as
//! [`ws::Server`](crate::ws::Server). It needs a server that supports HTTP/1.1 upgrades
//! (`axum::serve` does). The peer address comes from axum's `ConnectInfo<SocketAddr>` when the app
//! is served `into_make_service_with_connect_info`.
//!
//! axum's own graceful shutdown stops waiting for a connection once it is upgraded, so the
//! WebSockets are counted in a [`Connections`] set instead: call [`Connections::shutdown`] from the
//! shutdown future and they get close 1001 and a bounded wait for their close handshakes.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::routing::MethodRouter;
use tonic::transport::server::TcpConnectInfo;

use super::websocket::Endpoint;
use crate::grpc::GrpcParts;
use crate::ws::{Config, Connections, Handler};

/// An axum endpoint for a wsgrpc [`Handler`], with its limits and connection set.
#[derive(Debug)]
pub struct WebSocket<H> {
    handler: H,
    config: Config,
    connections: Connections,
}

impl<H: Handler> WebSocket<H> {
    /// `handler` with the default [`Config`] and a connection set of its own.
    pub fn new(handler: H) -> Self {
        WebSocket {
            handler,
            config: Config::default(),
            connections: Connections::new(),
        }
    }

    /// Replaces the limits and timeouts.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Counts the connections in `connections` (shared with other endpoints, say, so that one
    /// `max_connections` and one shutdown cover them all).
    #[must_use]
    pub fn with_connections(mut self, connections: Connections) -> Self {
        self.connections = connections;
        self
    }

    /// The set this endpoint's connections are counted in, for the shutdown.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The axum route: any method (a non-GET request gets `405` from the upgrade validation).
    pub fn into_route<S>(self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let endpoint = Endpoint::new(self.handler, self.config, self.connections);
        axum::routing::any(move |request: Request| {
            let endpoint = endpoint.clone();
            async move {
                let extensions = request.extensions();
                let peer = extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(peer)| *peer)
                    .or_else(|| {
                        extensions
                            .get::<TcpConnectInfo>()
                            .and_then(TcpConnectInfo::remote_addr)
                    });
                endpoint
                    .upgrade(request, peer)
                    .await
                    .map(axum::body::Body::from)
            }
        })
    }
}

/// The axum route for `handler` with the default [`Config`]; see [`WebSocket`] for settings and
/// for the connection set a graceful shutdown needs.
pub fn websocket<H, S>(handler: H) -> MethodRouter<S>
where
    H: Handler,
    S: Clone + Send + Sync + 'static,
{
    WebSocket::new(handler).into_route()
}

/// The gRPC services as an axum router behind their [`GrpcLayer`](crate::grpc::GrpcLayer), to
/// `merge` into an app: each service answers under `/{package}.{Service}/`.
///
/// The connection-level settings of [`grpc::Config`](crate::grpc::Config) (HTTP/2 keepalive,
/// window sizes, `max_concurrent_streams`) belong to the server, not the router; with
/// `axum::serve` they keep hyper's defaults. [`App`](super::App) applies them.
pub fn grpc_router(parts: GrpcParts) -> axum::Router {
    parts.routes.into_axum_router().layer(parts.layer)
}
