//! A WebSocket upgrade on a connection hyper serves: the part the one-port server and the axum
//! adapter share.
//!
//! ```no_run
//! # // The endpoint is internal; this shows the flow it implements with public pieces.
//! use wsgrpc::ws::{Config, Connections, Upgrade, serve_connection_with};
//! # async fn flow<H: wsgrpc::ws::Handler>(mut request: http::Request<()>, handler: H) {
//! let on_upgrade = hyper::upgrade::on(&mut request);
//! let mut upgrade = Upgrade::from_request(request, None).expect("an upgrade request");
//! handler.on_upgrade(&mut upgrade).await.expect("accepted");
//! let response = upgrade.response(); // sent by hyper as the 101
//! let io = hyper_util::rt::TokioIo::new(on_upgrade.await.expect("upgraded"));
//! let connections = Connections::new();
//! serve_connection_with(io, upgrade, &handler, &Config::default(), connections.open()).await;
//! # let _ = response;
//! # }
//! ```
//!
//! Everything the crate's own [`Server`](crate::ws::Server) enforces before the `101` applies
//! here too: `max_connections` (`503` with `Retry-After`, counted from the request so that
//! connections still in `on_upgrade` count), the handshake timeout around `on_upgrade` and the
//! hand-over, a panicking `on_upgrade` answered with `500`, and the handler's refusals as HTTP
//! responses. After the `101` the connection runs in its own task, counted in a
//! [`Connections`] set, so the server's shutdown closes it with 1001.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;

use super::assets::plain;
use crate::ws::{Config, Connections, Handler, Rejection, Upgrade, serve_connection_with};

/// A WebSocket handler with its limits and the set its connections are counted in.
#[derive(Debug)]
pub(crate) struct Endpoint<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) config: Arc<Config>,
    pub(crate) connections: Connections,
}

impl<H> Clone for Endpoint<H> {
    fn clone(&self) -> Self {
        Endpoint {
            handler: self.handler.clone(),
            config: self.config.clone(),
            connections: self.connections.clone(),
        }
    }
}

impl<H: Handler> Endpoint<H> {
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn new(handler: H, config: Config, connections: Connections) -> Self {
        Endpoint {
            handler: Arc::new(handler),
            config: Arc::new(config),
            connections,
        }
    }

    /// Answers an upgrade request, and when it is accepted, runs the connection in a new task once
    /// hyper has sent the `101`.
    pub(crate) async fn upgrade<B>(
        &self,
        mut request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<Bytes> {
        let config = &self.config;
        if self.connections.is_closing() {
            return unavailable("server shutting down\n");
        }
        if self.connections.count() >= config.max_connections {
            tracing::debug!(?peer, "websocket connection limit reached; answering 503");
            return unavailable("server at connection capacity\n");
        }
        // Counted from here: a limit must see connections still in `on_upgrade`.
        let guard = self.connections.open();
        let on_upgrade = hyper::upgrade::on(&mut request);
        let (parts, _body) = request.into_parts();
        let mut upgrade = match Upgrade::from_request(Request::from_parts(parts, ()), peer) {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let deadline = tokio::time::Instant::now() + config.handshake_timeout;
        let decided = AssertUnwindSafe(self.handler.on_upgrade(&mut upgrade)).catch_unwind();
        match tokio::time::timeout_at(deadline, decided).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(rejection))) => {
                tracing::debug!(?peer, status = %rejection.status(), "websocket upgrade refused");
                return rejection.into_response();
            }
            Ok(Err(_)) => {
                tracing::error!(?peer, "on_upgrade panicked; answering 500");
                return Rejection::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
                    .into_response();
            }
            Err(_) => {
                tracing::debug!(
                    ?peer,
                    "on_upgrade passed the handshake timeout; answering 503"
                );
                return unavailable("websocket handshake timed out\n");
            }
        }
        let response = upgrade.response();
        let endpoint = self.clone();
        tokio::spawn(async move {
            match tokio::time::timeout_at(deadline, on_upgrade).await {
                Ok(Ok(upgraded)) => {
                    serve_connection_with(
                        TokioIo::new(upgraded),
                        upgrade,
                        &*endpoint.handler,
                        &endpoint.config,
                        guard,
                    )
                    .await;
                }
                Ok(Err(error)) => tracing::debug!(?peer, %error, "websocket upgrade failed"),
                Err(_) => tracing::debug!(?peer, "websocket upgrade timed out"),
            }
        });
        response.map(|()| Bytes::new())
    }
}

/// `503` with `Retry-After`, as the crate's own server answers at capacity.
fn unavailable(body: &'static str) -> Response<Bytes> {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Whether a request asks for a WebSocket upgrade (`Upgrade: websocket`, any case).
pub(crate) fn is_upgrade<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
}
