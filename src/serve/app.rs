//! The one-port server: the builder ([`App`]) and what it does with each connection the crate's
//! accept loop ([`crate::net`]) hands it.
//!
//! ```no_run
//! use wsgrpc::grpc::GrpcServer;
//! use wsgrpc::serve::{App, Assets, Cors};
//! use wsgrpc::ws::{handler_fn, Message, SessionHandle};
//!
//! # async fn example() -> wsgrpc::Result<()> {
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! println!("listening on http://{}", listener.local_addr()?);
//! App::new()
//!     .websocket(echo)
//!     .grpc(GrpcServer::new().into_parts().await?)
//!     .grpc_web(Cors::default())
//!     .assets(Assets::new().file("/", "text/html", "<!doctype html><p>hello</p>"))
//!     .serve(listener, wsgrpc::shutdown_signal())
//!     .await
//! # }
//! ```
//!
//! Every connection is served by hyper-util's automatic HTTP/1.1-or-HTTP/2 connection (with
//! upgrades), with the HTTP/2 settings of the gRPC [`Config`](crate::grpc::Config) applied exactly
//! as gRPC's own accept loop applies them. Each connection runs as a task in one `JoinSet`, so the
//! drain deadline can stop what is left; each WebSocket is counted in a [`Connections`] set, so
//! shutdown can close it with 1001 and wait (bounded) for its close handshake.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::TcpConnectInfo;
#[cfg(feature = "grpc-web")]
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower_layer::Layer;
use tower_service::Service;

use super::Assets;
use super::websocket::{Endpoint, is_upgrade};
#[cfg(feature = "grpc-web")]
use super::{Cors, cors::Verdict};
use crate::grpc::serve::configure_http2;
use crate::grpc::{GrpcLayer, GrpcParts};
use crate::net::serve::{AcceptOptions, Connector, accept_until, drain};
use crate::net::{Listener, Shutdown};
use crate::ws::{self, Connections, Handler, Rejection, Upgrade};
use crate::{BoxError, Result};

/// The gRPC services behind the request layers, as [`GrpcParts`] assembles them.
type GrpcService = <GrpcLayer as Layer<Routes>>::Service;

/// The WebSocket handler of an [`App`] that has none: every upgrade gets `404`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWebSocket;

impl Handler for NoWebSocket {
    async fn on_upgrade(&self, _upgrade: &mut Upgrade) -> std::result::Result<(), Rejection> {
        Err(Rejection::new(
            http::StatusCode::NOT_FOUND,
            "no websocket endpoint here\n",
        ))
    }
}

/// What one port serves; build it, then [`serve`](Self::serve) it on a listener. See the
/// [module docs](super).
#[derive(Debug)]
pub struct App<H = NoWebSocket> {
    handler: H,
    ws_config: ws::Config,
    grpc: Option<GrpcParts>,
    #[cfg(feature = "grpc-web")]
    grpc_web: Option<Cors>,
    assets: Assets,
    request_head_timeout: Duration,
    tcp_nodelay: bool,
    connections: Connections,
    #[cfg(feature = "tls")]
    tls: Option<crate::net::TlsConfig>,
}

/// Default of [`App::request_head_timeout`]: 10 s, as the WebSocket handshake timeout.
pub const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

impl App<NoWebSocket> {
    /// Serves nothing yet: WebSocket upgrades get `404`, gRPC calls `UNIMPLEMENTED`, other requests
    /// `404`.
    pub fn new() -> Self {
        App {
            handler: NoWebSocket,
            ws_config: ws::Config::default(),
            grpc: None,
            #[cfg(feature = "grpc-web")]
            grpc_web: None,
            assets: Assets::new(),
            request_head_timeout: DEFAULT_REQUEST_HEAD_TIMEOUT,
            tcp_nodelay: true,
            connections: Connections::new(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl Default for App<NoWebSocket> {
    fn default() -> Self {
        App::new()
    }
}

impl<H: Handler> App<H> {
    /// Runs `handler` on every WebSocket upgrade request (any path: put a
    /// [`Router`](crate::ws::Router) here to dispatch by path, and guards in front of it).
    pub fn websocket<H2: Handler>(self, handler: H2) -> App<H2> {
        App {
            handler,
            ws_config: self.ws_config,
            grpc: self.grpc,
            #[cfg(feature = "grpc-web")]
            grpc_web: self.grpc_web,
            assets: self.assets,
            request_head_timeout: self.request_head_timeout,
            tcp_nodelay: self.tcp_nodelay,
            connections: self.connections,
            #[cfg(feature = "tls")]
            tls: self.tls,
        }
    }

    /// The WebSocket limits, timeouts and shutdown wait; default [`ws::Config::default`].
    #[must_use]
    pub fn websocket_config(mut self, config: ws::Config) -> Self {
        self.ws_config = config;
        self
    }

    /// Serves these gRPC services (HTTP/2 requests with `content-type: application/grpc...`),
    /// behind their [`GrpcLayer`], with the HTTP/2 settings and drain deadline of their
    /// [`Config`](crate::grpc::Config). Health turns NOT_SERVING when shutdown begins.
    #[must_use]
    pub fn grpc(mut self, parts: GrpcParts) -> Self {
        self.grpc = Some(parts);
        self
    }

    /// Also serves the gRPC services to browsers as gRPC-Web (`application/grpc-web*`, over
    /// HTTP/1.1 and HTTP/2, translated by tonic-web), with `cors` deciding which pages may call.
    /// Needs [`grpc`](Self::grpc).
    #[cfg(feature = "grpc-web")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc-web")))]
    #[must_use]
    pub fn grpc_web(mut self, cors: Cors) -> Self {
        self.grpc_web = Some(cors);
        self
    }

    /// Serves these files to plain HTTP requests.
    #[must_use]
    pub fn assets(mut self, assets: Assets) -> Self {
        self.assets = assets;
        self
    }

    /// Time a connection gets from accept to its first complete request (of either HTTP version),
    /// and an HTTP/1.1 connection for each request head after that: a client that trickles bytes
    /// (slowloris) or says nothing is disconnected. Default [`DEFAULT_REQUEST_HEAD_TIMEOUT`]
    /// (10 s). The TLS handshake has its own bound, the WebSocket [`handshake_timeout`](
    /// ws::Config::handshake_timeout).
    #[must_use]
    pub fn request_head_timeout(mut self, timeout: Duration) -> Self {
        self.request_head_timeout = timeout;
        self
    }

    /// Sets `TCP_NODELAY` on accepted sockets. Default `true`: WebSocket writes are batched
    /// already and gRPC messages are small and latency-bound, so Nagle's algorithm would only add
    /// latency. On one port the socket is shared before anyone knows its protocol, so this
    /// replaces the `tcp_nodelay` of both `ws::Config` and `grpc::Config`.
    #[must_use]
    pub fn tcp_nodelay(mut self, enabled: bool) -> Self {
        self.tcp_nodelay = enabled;
        self
    }

    /// Serves everything over TLS: `https://`, `wss://` and gRPC over TLS. ALPN: `h2` and
    /// `http/1.1` unless the configuration offers protocols of its own (browsers open WebSockets
    /// over HTTP/1.1). The handshake must finish within the WebSocket
    /// [`handshake_timeout`](ws::Config::handshake_timeout).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls(mut self, tls: impl Into<crate::net::TlsConfig>) -> Self {
        self.tls = Some(tls.into());
        self
    }

    /// The set the WebSocket connections are counted in, to watch their number.
    pub fn connections(&self) -> Connections {
        self.connections.clone()
    }

    /// Serves `listener` until `signal` completes, then shuts down gracefully:
    ///
    /// 1. gRPC health reports NOT_SERVING (load balancers watching it move traffic away);
    /// 2. the listener closes, so new connections are refused;
    /// 3. every WebSocket gets close 1001 and up to `ws::Config::shutdown_timeout` for its close
    ///    handshake; every HTTP/2 connection gets a GOAWAY and every HTTP/1.1 connection closes
    ///    after its current request, and their calls in flight get up to
    ///    `grpc::Config::drain_timeout` to finish (both waits run at once);
    /// 4. whatever is left is closed.
    pub async fn serve<L, F>(self, listener: L, signal: F) -> Result<()>
    where
        L: Listener,
        F: Future<Output = ()> + Send,
    {
        let grpc_config = self
            .grpc
            .as_ref()
            .map(|parts| parts.config.clone())
            .unwrap_or_default();
        let health = self.grpc.as_ref().map(|parts| parts.health.clone());
        let options = AcceptOptions {
            nodelay: self.tcp_nodelay,
            keepalive: grpc_config.tcp_keepalive_settings(),
            #[cfg(feature = "tls")]
            tls: self
                .tls
                .as_ref()
                .map(|tls| tls.acceptor(&[crate::net::tls::H2, crate::net::tls::HTTP_1_1])),
            #[cfg(not(feature = "tls"))]
            tls: None,
            tls_handshake_timeout: self.ws_config.handshake_timeout,
        };
        let ws_shutdown_timeout = self.ws_config.shutdown_timeout;
        let connections = self.connections.clone();
        let connector = Arc::new(HttpConnector {
            builder: http_builder(&self.ws_config, &grpc_config, self.request_head_timeout),
            request_head_timeout: self.request_head_timeout,
            routes: Arc::new(Routing::new(self)),
        });

        let shutdown = Shutdown::new();
        let mut tasks = JoinSet::new();
        let listener = accept_until(
            listener, &connector, &options, signal, &shutdown, &mut tasks,
        )
        .await;
        tracing::info!(
            connections = tasks.len(),
            websockets = connections.count(),
            "one-port server shutting down"
        );
        if let Some(health) = &health {
            health.set_not_serving().await;
        }
        drop(listener);
        shutdown.trigger();
        let http = drain(&mut tasks, grpc_config.drain_timeout, "one-port server");
        let websockets = connections.shutdown(ws_shutdown_timeout);
        let _ = tokio::join!(http, websockets);
        tracing::info!("one-port server stopped");
        Ok(())
    }
}

/// hyper-util's HTTP/1.1-or-HTTP/2 builder with the settings of both sides.
fn http_builder(
    ws_config: &ws::Config,
    grpc_config: &crate::grpc::Config,
    request_head_timeout: Duration,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slowloris: a request head must arrive whole within the timeout.
        .header_read_timeout(request_head_timeout)
        // hyper refuses smaller buffers; a head over the limit gets 431, as on `ws::Server`.
        .max_buf_size(ws_config.max_request_head_size.max(8192));
    configure_http2!(builder.http2(), grpc_config);
    builder
}

/// The one-port side of the accept loop: HTTP/1.1 or HTTP/2 on every connection.
struct HttpConnector<H> {
    builder: auto::Builder<TokioExecutor>,
    request_head_timeout: Duration,
    routes: Arc<Routing<H>>,
}

impl<H: Handler> Connector for HttpConnector<H> {
    type Ticket = ();

    fn admit(&self, _peer: Option<SocketAddr>) -> Option<()> {
        Some(())
    }

    async fn serve<Io>(
        self: Arc<Self>,
        io: Io,
        peer: Option<SocketAddr>,
        (): (),
        shutdown: Shutdown,
    ) where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let dispatch = Dispatch {
            routes: self.routes.clone(),
            info: TcpConnectInfo {
                local_addr: None,
                remote_addr: peer,
            },
            seen_request: Arc::new(AtomicBool::new(false)),
        };
        serve_http(
            io,
            dispatch,
            &self.builder,
            self.request_head_timeout,
            shutdown,
        )
        .await;
    }
}

/// Serves HTTP on one connection; a WebSocket upgrade leaves it, running on in its own task.
async fn serve_http<IO, H>(
    io: IO,
    dispatch: Dispatch<H>,
    builder: &auto::Builder<TokioExecutor>,
    request_head_timeout: Duration,
    shutdown: Shutdown,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let peer = dispatch.info.remote_addr();
    let seen_request = dispatch.seen_request.clone();
    let mut connection = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), dispatch));
    // hyper's header read timeout starts only once the HTTP version is known, so a socket that
    // sends nothing at all needs this first deadline of its own.
    let mut first_request = pin!(tokio::time::sleep(request_head_timeout));
    let mut first_request_due = true;
    let mut draining = pin!(shutdown.triggered());
    let mut drain_sent = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(?peer, %error, "connection ended with an error");
                }
                return;
            }
            () = &mut first_request, if first_request_due => {
                first_request_due = false;
                if !seen_request.load(Ordering::Relaxed) {
                    tracing::debug!(?peer, "no request within the request head timeout");
                    return;
                }
            }
            () = &mut draining, if !drain_sent => {
                drain_sent = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What one port serves, ready for requests.
struct Routing<H> {
    websocket: Endpoint<H>,
    grpc: Option<GrpcService>,
    #[cfg(feature = "grpc-web")]
    grpc_web: Option<(Cors, GrpcWebService<GrpcService>)>,
    assets: Assets,
}

impl<H: Handler> Routing<H> {
    fn new(app: App<H>) -> Self {
        let grpc = app
            .grpc
            .map(|parts| Layer::layer(&parts.layer, parts.routes));
        #[cfg(feature = "grpc-web")]
        let grpc_web = match (app.grpc_web, &grpc) {
            (Some(cors), Some(grpc)) => Some((cors, GrpcWebLayer::new().layer(grpc.clone()))),
            (Some(_), None) => {
                tracing::warn!("grpc-web is enabled but no grpc services are: nothing to call");
                None
            }
            (None, _) => None,
        };
        Routing {
            websocket: Endpoint::new(app.handler, app.ws_config, app.connections),
            grpc,
            #[cfg(feature = "grpc-web")]
            grpc_web,
            assets: app.assets,
        }
    }

    /// Routes one request by protocol.
    async fn route(&self, request: Request<Incoming>, peer: Option<SocketAddr>) -> Response<Body> {
        // RFC 9112 section 3.2: missing, repeated or invalid Host gets 400, whatever the protocol.
        if let Err(rejection) = crate::origin::request_authority(&request) {
            return full(rejection.into_http());
        }
        #[cfg(feature = "grpc-web")]
        let grpc_web = self.grpc_web.is_some();
        // Without the feature, gRPC-Web requests are plain HTTP to this server: the assets answer.
        #[cfg(not(feature = "grpc-web"))]
        let grpc_web = false;
        match Protocol::of(&request, grpc_web) {
            Protocol::WebSocket => full(self.websocket.upgrade(request, peer).await),
            #[cfg(not(feature = "grpc-web"))]
            Protocol::GrpcWeb => full(self.assets.respond(&request)),
            #[cfg(feature = "grpc-web")]
            Protocol::GrpcWeb => {
                let Some((cors, service)) = &self.grpc_web else {
                    return full(self.assets.respond(&request));
                };
                match cors.check(&request) {
                    Verdict::Pass => call(service.clone(), request).await,
                    Verdict::Allow(headers) => {
                        let mut response = call(service.clone(), request).await;
                        response.headers_mut().extend(headers);
                        response
                    }
                    Verdict::Respond(response) => full(response),
                }
            }
            Protocol::Grpc => match &self.grpc {
                Some(service) => call(service.clone(), request.map(Body::new)).await,
                None => tonic::Status::unimplemented("no grpc services here")
                    .into_http()
                    .map(|()| Body::empty()),
            },
            Protocol::Http => full(self.assets.respond(&request)),
        }
    }
}

/// Which side of the server a request is for.
#[derive(Debug, PartialEq, Eq)]
enum Protocol {
    WebSocket,
    GrpcWeb,
    Grpc,
    Http,
}

impl Protocol {
    fn of<B>(request: &Request<B>, grpc_web: bool) -> Protocol {
        if is_upgrade(request) {
            return Protocol::WebSocket;
        }
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if content_type.starts_with("application/grpc-web") {
            return Protocol::GrpcWeb;
        }
        // A CORS preflight carries no content type; with gRPC-Web on, it is for gRPC-Web.
        if grpc_web
            && request.method() == http::Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Protocol::GrpcWeb;
        }
        if content_type.starts_with("application/grpc") {
            return Protocol::Grpc;
        }
        Protocol::Http
    }
}

/// Calls a tower service that never fails (tonic's `Routes` and the layers around it).
async fn call<S, B, ReqBody>(mut service: S, request: Request<ReqBody>) -> Response<Body>
where
    S: Service<Request<ReqBody>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let response = match poll_fn(|cx| service.poll_ready(cx)).await {
        Ok(()) => service.call(request).await,
        Err(never) => match never {},
    };
    match response {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

fn full(response: Response<Bytes>) -> Response<Body> {
    response.map(|bytes| Body::new(Full::new(bytes)))
}

/// The per-connection hyper service: routes each request and notes that one arrived.
struct Dispatch<H> {
    routes: Arc<Routing<H>>,
    info: TcpConnectInfo,
    seen_request: Arc<AtomicBool>,
}

impl<H: Handler> hyper::service::Service<Request<Incoming>> for Dispatch<H> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.seen_request.store(true, Ordering::Relaxed);
        // tonic's `Request::remote_addr` reads this, as under tonic's own server.
        request.extensions_mut().insert(self.info.clone());
        let peer = self.info.remote_addr();
        let routes = self.routes.clone();
        Box::pin(async move { Ok(routes.route(request, peer).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>) -> http::request::Builder {
        let builder = Request::post("/helloworld.Greeter/SayHello");
        match content_type {
            Some(content_type) => builder.header("content-type", content_type),
            None => builder,
        }
    }

    #[test]
    fn requests_are_told_apart_by_protocol() {
        let of = |request: Request<()>| Protocol::of(&request, true);
        assert_eq!(
            of(request(Some("application/grpc")).body(()).expect("valid")),
            Protocol::Grpc
        );
        assert_eq!(
            of(request(Some("application/grpc+proto"))
                .body(())
                .expect("valid")),
            Protocol::Grpc
        );
        assert_eq!(
            of(request(Some("application/grpc-web+proto"))
                .body(())
                .expect("valid")),
            Protocol::GrpcWeb
        );
        assert_eq!(
            of(Request::get("/chat")
                .header("upgrade", "WebSocket")
                .body(())
                .expect("valid")),
            Protocol::WebSocket
        );
        assert_eq!(
            of(Request::options("/helloworld.Greeter/SayHello")
                .header("access-control-request-method", "POST")
                .body(())
                .expect("valid")),
            Protocol::GrpcWeb
        );
        assert_eq!(
            of(Request::get("/").body(()).expect("valid")),
            Protocol::Http
        );
    }
}
