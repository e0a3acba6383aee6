//! A WebSocket upgrade on a connection hyper serves: the part the one-port server and the axum
//! adapter share.
//!
//! ```no_run
//! # // The endpoint is internal; this shows the flow it implements with public pieces.
//! use wsgrpc::ws::{Config, Connections, Upgrade, serve_connection_with};
//! # async fn flow<H: wsgrpc::ws::Handler>(mut request: http::Request<()>, handler: H) {
//! let on_upgrade = hyper::upgrade::on(&mut request);
//! let mut upgrade = Upgrade::from_request(request, None).expect("an upgrade request");
//! Config::default().check_origin(&upgrade).expect("same origin"); // else 403
//! handler.on_upgrade(&mut upgrade).await.expect("accepted");
//! let response = upgrade.response(); // sent by hyper as the 101
//! let io = hyper_util::rt::TokioIo::new(on_upgrade.await.expect("upgraded"));
//! let connections = Connections::new();
//! serve_connection_with(io, upgrade, &handler, &Config::default(), connections.open()).await;
//! # let _ = response;
//! # }
//! ```
//!
//! The decisions are the crate's one upgrade path (`ws::accept`), exactly as on
//! [`ws::Server`](crate::ws::Server): `max_connections` (`503` with `Retry-After`, counted from
//! the request so that connections still in `on_upgrade` count), validation and the origin policy,
//! the handshake timeout around `on_upgrade` and the hand-over, a panicking `on_upgrade` answered
//! with `500`, and the handler's refusals as HTTP responses. After the `101` (HTTP/1.1) or the
//! `200` (an RFC 8441 extended CONNECT on HTTP/2; hyper hands over the stream the same way,
//! through `hyper::upgrade::on`) the connection runs in its own task, counted in a
//! [`Connections`] set, so the server's shutdown closes it with 1001.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, header};
use hyper_util::rt::TokioIo;

use crate::ws::accept::Acceptor;
use crate::ws::{Config, Connections, Handler};

/// A WebSocket handler with its limits and the set its connections are counted in: the crate's
/// one upgrade path ([`Acceptor`]) on hyper's side.
#[derive(Debug)]
pub(crate) struct Endpoint<H> {
    acceptor: Arc<Acceptor<H>>,
}

impl<H> Clone for Endpoint<H> {
    fn clone(&self) -> Self {
        Endpoint {
            acceptor: self.acceptor.clone(),
        }
    }
}

impl<H: Handler> Endpoint<H> {
    pub(crate) fn new(handler: H, config: Config, connections: Connections) -> Self {
        Endpoint {
            acceptor: Arc::new(Acceptor::new(handler, config, connections)),
        }
    }

    /// Answers an upgrade request, and when it is accepted, runs the connection in a new task once
    /// hyper has sent the `101`.
    pub(crate) async fn upgrade<B>(
        &self,
        mut request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<Bytes> {
        let acceptor = &self.acceptor;
        let guard = match acceptor.admit() {
            Ok(guard) => guard,
            Err(rejection) => {
                crate::metrics::ws_handshake_refused(rejection.status());
                return rejection.into_http();
            }
        };
        let on_upgrade = hyper::upgrade::on(&mut request);
        let (parts, _body) = request.into_parts();
        let deadline = tokio::time::Instant::now() + acceptor.config().handshake_timeout;
        let accepted = match acceptor
            .decide(Request::from_parts(parts, ()), peer, guard, deadline)
            .await
        {
            Ok(accepted) => accepted,
            Err(rejection) => {
                crate::metrics::ws_handshake_refused(rejection.status());
                return rejection.into_http();
            }
        };
        let response = accepted.response();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match tokio::time::timeout_at(deadline, on_upgrade).await {
                Ok(Ok(upgraded)) => {
                    acceptor
                        .run(TokioIo::new(upgraded), accepted, Vec::new())
                        .await;
                }
                Ok(Err(error)) => tracing::debug!(?peer, %error, "websocket upgrade failed"),
                Err(_) => tracing::debug!(?peer, "websocket upgrade timed out"),
            }
        });
        response.map(|()| Bytes::new())
    }
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
