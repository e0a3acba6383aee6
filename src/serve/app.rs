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
//! as gRPC's own accept loop applies them, plus RFC 8441's extended CONNECT. Each request's body
//! is boxed once into [`Body`], then goes through the app's layers (when there are any) to the
//! routing; without layers the routing is called directly, so an app without them pays nothing
//! for the tower stack. Each connection runs as a task in one `JoinSet`, so the
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
use tonic::service::Routes;
use tonic::transport::server::TcpConnectInfo;
#[cfg(feature = "grpc-web")]
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

use super::Assets;
use super::service::{Body, BoxHttpService, box_http_service};
use super::websocket::{Endpoint, is_upgrade};
#[cfg(feature = "grpc-web")]
use super::{Cors, CorsService};
use crate::grpc::serve::configure_http2;
use crate::grpc::{GrpcLayer, GrpcParts};
use crate::net::serve::{AcceptOptions, Connector, accept_until, drain};
use crate::net::{Listener, Shutdown};
use crate::ws::upgrade::is_extended_connect;
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
/// [module docs](super) for the routing order.
#[derive(Debug)]
pub struct App<H = NoWebSocket> {
    handler: H,
    /// Whether [`App::websocket`] was called: without it, upgrades go to the fallback if any.
    has_websocket: bool,
    ws_config: ws::Config,
    grpc: Option<GrpcParts>,
    #[cfg(feature = "grpc-web")]
    grpc_web: Option<Cors>,
    assets: Assets,
    fallback: Option<BoxHttpService>,
    layers: Layers,
    request_head_timeout: Duration,
    tcp_nodelay: bool,
    connections: Connections,
    #[cfg(feature = "tls")]
    tls: Option<crate::net::TlsConfig>,
}

/// The layers of [`App::layer`], first added innermost; applied once, when serving starts.
#[derive(Default)]
struct Layers(Vec<Box<dyn FnOnce(BoxHttpService) -> BoxHttpService + Send + Sync>>);

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers")
            .field("len", &self.0.len())
            .finish()
    }
}

/// Default of [`App::request_head_timeout`]: 10 s, as the WebSocket handshake timeout.
pub const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

impl App<NoWebSocket> {
    /// Serves nothing yet: WebSocket upgrades get `404`, gRPC calls `UNIMPLEMENTED`, other requests
    /// `404`.
    pub fn new() -> Self {
        App {
            handler: NoWebSocket,
            has_websocket: false,
            ws_config: ws::Config::default(),
            grpc: None,
            #[cfg(feature = "grpc-web")]
            grpc_web: None,
            assets: Assets::new(),
            fallback: None,
            layers: Layers::default(),
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
    /// Runs `handler` on every WebSocket request, HTTP/1.1 upgrade (RFC 6455) or HTTP/2 extended
    /// CONNECT (RFC 8441) alike, on any path: put a [`Router`](crate::ws::Router) here to
    /// dispatch by path, and guards in front of it. [`Session::http_version`](
    /// crate::ws::Session::http_version) tells the two apart.
    pub fn websocket<H2: Handler>(self, handler: H2) -> App<H2> {
        App {
            handler,
            has_websocket: true,
            ws_config: self.ws_config,
            grpc: self.grpc,
            #[cfg(feature = "grpc-web")]
            grpc_web: self.grpc_web,
            assets: self.assets,
            fallback: self.fallback,
            layers: self.layers,
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

    /// Serves these files to plain HTTP requests, by exact path, before the
    /// [`fallback`](Self::fallback) sees them.
    #[must_use]
    pub fn assets(mut self, assets: Assets) -> Self {
        self.assets = assets;
        self
    }

    /// Sends every request no other part of the app takes to `service`: an axum `Router` with
    /// REST routes, tower-http's `ServeDir`, any tower service answering `http::Request<`[`Body`]`>`
    /// (bodies implementing `http_body::Body<Data = Bytes>` convert with [`Body::new`]).
    /// Default: none, so those requests get `404`. Calling it again replaces the service.
    ///
    /// It receives plain HTTP requests that no [`assets`](Self::assets) path matches; gRPC
    /// requests when no [`grpc`](Self::grpc) services are set (a tonic router mounted in the
    /// fallback then works); WebSocket requests when no [`websocket`](Self::websocket) handler
    /// is set (an axum app with its own WebSocket routes then works unchanged); and plain
    /// `CONNECT` requests (without RFC 8441's `:protocol`). Its errors (`S::Error`) become
    /// `500 Internal Server Error`, logged; they never reach the connection.
    #[must_use]
    pub fn fallback<S, B>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.fallback = Some(box_http_service(service));
        self
    }

    /// Wraps the whole HTTP service of the app in `layer` (tower middleware: tower-http's
    /// `TraceLayer`, `CompressionLayer`, `SetRequestIdLayer`, `TimeoutLayer`...). Layers added
    /// later wrap the ones added before, so the last one sees a request first (as axum's
    /// `Router::layer`).
    ///
    /// What a layer sees: every request the connection reads, before the `Host` check and the
    /// routing (so a request refused there with `400` passes the layer too), and every response,
    /// for all of the app: WebSocket upgrade requests and their
    /// `101` (HTTP/1.1) or `200` (HTTP/2) response or refusal, but not the WebSocket frames that
    /// follow (those are the [`Handler`]'s, with the WebSocket [`Layer`](crate::ws::Layer)s);
    /// gRPC and gRPC-Web calls, inside the HTTP/2 connection settings and outside the
    /// [`GrpcLayer`] (limits, deadline, authentication); the assets and the fallback. A layer
    /// that answers a WebSocket request itself (a timeout, an auth check) refuses the upgrade
    /// with its response. Errors of the layered service become `500`, as for the fallback. The
    /// `101`/`200` answers to WebSocket requests have empty bodies, which tower-http's
    /// `CompressionLayer` leaves alone (its default predicate compresses only above 32 bytes); a
    /// layer of your own that gives them a body breaks the upgrade (hyper refuses a `200` to a
    /// CONNECT with a `Content-Length` above 0).
    #[must_use]
    pub fn layer<L, B>(mut self, layer: L) -> Self
    where
        L: Layer<BoxHttpService> + Send + Sync + 'static,
        L::Service: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
        <L::Service as Service<Request<Body>>>::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.layers
            .0
            .push(Box::new(move |inner| box_http_service(layer.layer(inner))));
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
        let builder = http_builder(&self.ws_config, &grpc_config, self.request_head_timeout);
        let request_head_timeout = self.request_head_timeout;
        let connector = Arc::new(HttpConnector {
            builder,
            request_head_timeout,
            stack: Stack::new(self),
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
    // RFC 8441 section 3: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, so clients may open WebSockets
    // as extended CONNECT streams. Browsers use it only over TLS (h2); ws:// stays HTTP/1.1.
    builder.http2().enable_connect_protocol();
    builder
}

/// The one-port side of the accept loop: HTTP/1.1 or HTTP/2 on every connection.
struct HttpConnector<H> {
    builder: auto::Builder<TokioExecutor>,
    request_head_timeout: Duration,
    stack: Stack<H>,
}

/// The service requests go to: the routing itself, or the routing inside the app's layers.
enum Stack<H> {
    /// No layers: requests are routed directly, without erasing the routing into a service.
    Routing(Arc<Routing<H>>),
    Layered(BoxHttpService),
}

impl<H> Clone for Stack<H> {
    fn clone(&self) -> Self {
        match self {
            Stack::Routing(routing) => Stack::Routing(routing.clone()),
            Stack::Layered(service) => Stack::Layered(service.clone()),
        }
    }
}

impl<H: Handler> Stack<H> {
    fn new(mut app: App<H>) -> Self {
        let layers = std::mem::take(&mut app.layers.0);
        let routing = Arc::new(Routing::new(app));
        if layers.is_empty() {
            return Stack::Routing(routing);
        }
        let service = box_http_service(RoutingService(routing));
        Stack::Layered(
            layers
                .into_iter()
                .fold(service, |inner, layer| layer(inner)),
        )
    }
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
            stack: self.stack.clone(),
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
    /// `None` when the app has no handler of its own: upgrades go to the fallback then.
    websocket: Option<Endpoint<H>>,
    grpc: Option<GrpcService>,
    #[cfg(feature = "grpc-web")]
    grpc_web: Option<CorsService<GrpcWebService<GrpcService>>>,
    assets: Assets,
    fallback: Option<BoxHttpService>,
}

impl<H: Handler> Routing<H> {
    fn new(app: App<H>) -> Self {
        let grpc = app
            .grpc
            .map(|parts| Layer::layer(&parts.layer, parts.routes));
        #[cfg(feature = "grpc-web")]
        let grpc_web = match (app.grpc_web, &grpc) {
            (Some(cors), Some(grpc)) => Some(cors.layer(GrpcWebLayer::new().layer(grpc.clone()))),
            (Some(_), None) => {
                tracing::warn!("grpc-web is enabled but no grpc services are: nothing to call");
                None
            }
            (None, _) => None,
        };
        // Without a handler of its own and with a fallback, the fallback gets the upgrades;
        // otherwise the app's handler (`NoWebSocket` answers 404).
        let websocket = (app.has_websocket || app.fallback.is_none())
            .then(|| Endpoint::new(app.handler, app.ws_config, app.connections));
        Routing {
            websocket,
            grpc,
            #[cfg(feature = "grpc-web")]
            grpc_web,
            assets: app.assets,
            fallback: app.fallback,
        }
    }

    /// Routes one request by protocol: WebSocket, gRPC-Web, gRPC, then plain HTTP (assets, then
    /// the fallback, then 404).
    async fn route(&self, request: Request<Body>) -> Response<Body> {
        // RFC 9112 section 3.2: missing, repeated or invalid Host gets 400, whatever the protocol.
        if let Err(rejection) = crate::origin::request_authority(&request) {
            return full(rejection.into_http());
        }
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        #[cfg(feature = "grpc-web")]
        let grpc_web = self.grpc_web.is_some();
        // Without the feature, gRPC-Web requests are plain HTTP to this server: the assets answer.
        #[cfg(not(feature = "grpc-web"))]
        let grpc_web = false;
        let protocol = Protocol::of(&request, grpc_web);
        crate::metrics::app_request(protocol.label());
        match protocol {
            Protocol::WebSocket => match &self.websocket {
                Some(endpoint) => full(endpoint.upgrade(request, peer).await),
                None => self.http(request).await,
            },
            #[cfg(not(feature = "grpc-web"))]
            Protocol::GrpcWeb => self.http(request).await,
            #[cfg(feature = "grpc-web")]
            Protocol::GrpcWeb => {
                let Some(service) = &self.grpc_web else {
                    return self.http(request).await;
                };
                call(service.clone(), request).await
            }
            Protocol::Grpc => match (&self.grpc, &self.fallback) {
                (Some(service), _) => call(service.clone(), request).await,
                (None, Some(fallback)) => call(fallback.clone(), request).await,
                (None, None) => tonic::Status::unimplemented("no grpc services here")
                    .into_http()
                    .map(|()| Body::empty()),
            },
            Protocol::Http => self.http(request).await,
        }
    }

    /// A plain HTTP request: the assets' exact paths, then the fallback, then `404`.
    async fn http(&self, request: Request<Body>) -> Response<Body> {
        match &self.fallback {
            Some(fallback) if !self.assets.serves(request.uri().path()) => {
                call(fallback.clone(), request).await
            }
            _ => full(self.assets.respond(&request)),
        }
    }
}

/// The routing as a tower service, for the app's layers to wrap.
struct RoutingService<H>(Arc<Routing<H>>);

impl<H> Clone for RoutingService<H> {
    fn clone(&self) -> Self {
        RoutingService(self.0.clone())
    }
}

impl<H: Handler> Service<Request<Body>> for RoutingService<H> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let routing = self.0.clone();
        Box::pin(async move { Ok(routing.route(request).await) })
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
    /// The `protocol` label of [`crate::metrics::APP_REQUESTS`].
    fn label(&self) -> &'static str {
        match self {
            Protocol::WebSocket => "websocket",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }

    fn of<B>(request: &Request<B>, grpc_web: bool) -> Protocol {
        // An HTTP/1.1 upgrade, or an HTTP/2 extended CONNECT with any `:protocol` (the upgrade
        // path answers 501 to protocols other than `websocket`, RFC 9220 section 3).
        if is_upgrade(request) || is_extended_connect(request) {
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
    stack: Stack<H>,
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
        // Boxed once here, so routing, fallback and layers all see one body type.
        let request = request.map(Body::new);
        match &self.stack {
            Stack::Routing(routing) => {
                let routing = routing.clone();
                Box::pin(async move { Ok(routing.route(request).await) })
            }
            Stack::Layered(service) => {
                let service = service.clone();
                Box::pin(async move {
                    match service.oneshot(request).await {
                        Ok(response) => Ok(response),
                        Err(never) => match never {},
                    }
                })
            }
        }
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
