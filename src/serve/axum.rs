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
//! [`Rejection`] becomes the response), answers `101` (`200` to an HTTP/2 extended CONNECT),
//! and on hyper's upgraded stream runs the handler with
//! [`serve_connection_with`](crate::ws::serve_connection_with): the same limits, keepalive, close
//! codes and `max_connections` (`503`) as [`ws::Server`](crate::ws::Server). It needs a server
//! that supports HTTP/1.1 upgrades and, for HTTP/2, RFC 8441 (`axum::serve` does both). The peer address comes from axum's `ConnectInfo<SocketAddr>` when the app
//! is served `into_make_service_with_connect_info`.
//!
//! axum's own graceful shutdown stops waiting for a connection once it is upgraded, so the
//! WebSockets are counted in a [`Connections`] set instead: call [`Connections::shutdown`] from the
//! shutdown future and they get close 1001 and a bounded wait for their close handshakes.
//!
//! # In axum's style: the extractor
//!
//! A handler of your own can take a [`WebSocketUpgrade`], as with axum's extractor of the same
//! name, and hand the connection to a wsgrpc [`Handler`]; the checks, limits and close codes are
//! the same one upgrade path:
//!
//! ```no_run
//! use axum::Extension;
//! use axum::response::Response;
//! use wsgrpc::serve::axum::WebSocketUpgrade;
//! use wsgrpc::ws::{handler_fn, Connections, Message, SessionHandle};
//!
//! async fn chat(upgrade: WebSocketUpgrade) -> Response {
//!     let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!         session.send(message).await
//!     });
//!     upgrade.on_upgrade(echo).await
//! }
//!
//! let connections = Connections::new(); // close these from the shutdown future
//! let app: axum::Router = axum::Router::new()
//!     .route("/chat", axum::routing::any(chat))
//!     .layer(Extension(connections.clone()));
//! ```
//!
//! # WebSocket over HTTP/2
//!
//! Both the route and the extractor accept RFC 8441 extended CONNECT requests (`:protocol
//! websocket`) as well as HTTP/1.1 upgrades, with the rules of
//! [`Upgrade::http_version`](crate::ws::Upgrade::http_version); `axum::serve` advertises
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL` by itself. Route them with `any` (as [`websocket`] does):
//! an extended CONNECT is a `CONNECT` request, which `get` refuses with `405`.
//!
//! # gRPC-Web
//!
//! With the `grpc-web` feature, [`grpc_web_router`] serves the gRPC services to browsers too,
//! translated by tonic-web; CORS is then the app's own layer (tower-http's `CorsLayer`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::routing::MethodRouter;
use http::StatusCode;
use http::request::Parts;
use tonic::transport::server::TcpConnectInfo;

use super::websocket::Endpoint;
use crate::grpc::GrpcParts;
use crate::ws::{Config, Connections, Handler, Rejection};

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

    /// The axum route: any method, so that HTTP/2 extended CONNECT requests reach it too (other
    /// methods get `405` from the upgrade validation: `Allow: GET` on HTTP/1.1, `Allow: CONNECT`
    /// on HTTP/2).
    pub fn into_route<S>(self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let endpoint = Endpoint::new(self.handler, self.config, self.connections);
        axum::routing::any(move |request: Request| {
            let endpoint = endpoint.clone();
            async move {
                let peer = peer_addr(request.extensions());
                endpoint
                    .upgrade(request, peer)
                    .await
                    .map(axum::body::Body::from)
            }
        })
    }
}

/// The peer address axum's `ConnectInfo` (or the one-port app's `TcpConnectInfo`) recorded.
fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer)
        .or_else(|| {
            extensions
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
        })
}

/// An axum extractor for a WebSocket request (HTTP/1.1 upgrade or RFC 8441 extended CONNECT):
/// take it as an argument of an axum handler, then [`on_upgrade`](Self::on_upgrade) it with a
/// wsgrpc [`Handler`].
///
/// The connection set comes from the request's extensions: add it to the router with
/// `.layer(axum::Extension(connections))` (a [`Connections`]), so `max_connections` (`503`)
/// counts every WebSocket of the app and a shutdown can close them with 1001. The [`Config`]
/// comes from an `Extension(config)` too when there is one, else [`Config::default`]; either
/// can be replaced per request with [`config`](Self::config).
///
/// Extracting checks only what must hold before a handler runs; its [`Rejection`] (an axum
/// response): `500` when no `Extension<Connections>` is set (a programming error, as axum's
/// own `Extension` extractor answers), `426` with `Upgrade: websocket` when the connection
/// cannot be upgraded (a request served without hyper's upgrade support). Everything else
/// (RFC 6455 / RFC 8441 validation, the origin policy, the `Handler::on_upgrade` guards, the
/// handshake timeout) runs in [`on_upgrade`](Self::on_upgrade), in the crate's one order.
#[derive(Debug)]
pub struct WebSocketUpgrade {
    request: Request<()>,
    peer: Option<SocketAddr>,
    config: Config,
    connections: Connections,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        let Some(connections) = parts.extensions.get::<Connections>().cloned() else {
            tracing::error!(
                "WebSocketUpgrade needs the router layer axum::Extension(Connections); answering 500"
            );
            return Err(Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "websocket endpoint misconfigured\n",
            ));
        };
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(Rejection::new(
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded\n",
            )
            .with_header(
                http::header::UPGRADE,
                http::HeaderValue::from_static("websocket"),
            ));
        };
        let config = parts
            .extensions
            .get::<Config>()
            .cloned()
            .unwrap_or_default();
        let peer = peer_addr(&parts.extensions);
        // The head as the connection will keep it (`Session::request`), with the extensions the
        // layers before it added, and hyper's upgrade handle back in place for the endpoint.
        let mut request = Request::new(());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        *request.extensions_mut() = parts.extensions.clone();
        request.extensions_mut().insert(on_upgrade);
        Ok(WebSocketUpgrade {
            request,
            peer,
            config,
            connections,
        })
    }
}

impl WebSocketUpgrade {
    /// Replaces the limits and timeouts for this connection.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Which HTTP the request came over: `HTTP_11` (upgrade, answered `101`) or `HTTP_2`
    /// (extended CONNECT, answered `200`).
    pub fn http_version(&self) -> http::Version {
        self.request.version()
    }

    /// Runs the crate's upgrade path with `handler` and returns the response for axum to send:
    /// the `101` (or `200` on HTTP/2), after which the connection runs in its own task, counted
    /// in the connection set; or the refusal (`4xx`/`5xx`, see
    /// [`Upgrade::from_request`](crate::ws::Upgrade::from_request) and
    /// [`Upgrade::http_version`](crate::ws::Upgrade::http_version) for the rules, `503` at
    /// `max_connections`, the guards' own [`Rejection`]s).
    pub async fn on_upgrade<H: Handler>(self, handler: H) -> axum::response::Response {
        Endpoint::new(handler, self.config, self.connections)
            .upgrade(self.request, self.peer)
            .await
            .map(axum::body::Body::from)
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

/// [`grpc_router`] that also serves gRPC-Web (`content-type: application/grpc-web*`, over
/// HTTP/1.1 and HTTP/2), translated by tonic-web's `GrpcWebLayer` outside the
/// [`GrpcLayer`](crate::grpc::GrpcLayer), so limits, deadlines and authentication apply to both.
/// Native gRPC requests pass through unchanged.
///
/// CORS is not part of it: browsers on other origins need a CORS layer on the app (tower-http's
/// `CorsLayer`, exposing `grpc-status`, `grpc-message` and `grpc-status-details-bin`); pages
/// served by the same app need none.
#[cfg(feature = "grpc-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc-web")))]
pub fn grpc_web_router(parts: GrpcParts) -> axum::Router {
    grpc_router(parts).layer(tonic_web::GrpcWebLayer::new())
}
