//! The server builder: any tonic services plus what production needs, assembled once.
//!
//! [`GrpcServer`] collects services ([`add_service`](GrpcServer::add_service), any tonic generated
//! server), their descriptors for reflection, tower layers, the [`Config`], the authorizer and TLS.
//! [`GrpcServer::into_parts`] assembles them into [`GrpcParts`]: tonic [`Routes`] (your services,
//! health, reflection v1 and v1alpha) and the [`GrpcLayer`] to put in front of them. Those are plain
//! tower services, so a server that shares one port between gRPC and other protocols can mount them
//! itself; [`GrpcParts::serve`] is this crate's own HTTP/2 accept loop for the common case.

use std::{convert::Infallible, fmt, future::Future, pin::Pin, task::Context, task::Poll};

use axum::{extract::Request as AxumRequest, response::IntoResponse, routing::Route};
use bytes::Bytes;
use http::Request;
use tonic::{
    Status,
    body::Body,
    server::NamedService,
    service::{Routes, RoutesBuilder},
};
use tower_layer::Layer;
use tower_service::Service;

use super::{
    Config, GrpcLayer, HealthHandle,
    greet::Greet,
    greeter::GreeterService,
    layer::{AuthLayer, Authorize, BearerToken},
    pb,
    reflection::ReflectionService,
    serve,
};
use crate::net::Listener;
#[cfg(feature = "tls")]
use crate::net::TlsConfig;
use crate::{BoxError, Result};

/// Applies the per-service settings of a [`Config`] to a tonic generated server: the message size
/// limits and the compression encodings (`max_decoding_message_size`, `max_encoding_message_size`,
/// `accept_compressed`, `send_compressed`).
///
/// tonic keeps these on each generated server (`TodosServer`, `GreeterServer`...), which share the
/// method names but no trait, so no layer can set them; this macro calls the four methods on
/// whatever server it is given. Use it for your own services; [`GrpcServer`] applies the config
/// this way to the services it makes itself (the Greeter of [`GrpcServer::new`], health,
/// reflection).
///
/// ```
/// use wsgrpc::grpc::{Config, GreeterService, GrpcServer, pb::greeter_server::GreeterServer};
///
/// let config = Config::default().max_decoding_message_size(64 * 1024);
/// let greeter = wsgrpc::configure_service!(GreeterServer::new(GreeterService::default()), &config);
/// let server = GrpcServer::builder().add_service(greeter).config(config);
/// # let _ = server;
/// ```
#[macro_export]
macro_rules! configure_service {
    ($server:expr, $config:expr) => {{
        let config: &$crate::grpc::Config = $config;
        let mut server = $server
            .max_decoding_message_size(config.max_decoding_message_size)
            .max_encoding_message_size(config.max_encoding_message_size);
        for &encoding in &config.accept_compressed {
            server = server.accept_compressed(encoding);
        }
        for &encoding in &config.send_compressed {
            server = server.send_compressed(encoding);
        }
        server
    }};
}

/// A service waiting to be routed, made from the final [`Config`].
type AddService = Box<dyn FnOnce(&Config, &mut RoutesBuilder) + Send>;
/// A layer waiting to be applied to every route.
type ApplyLayer = Box<dyn FnOnce(axum::Router) -> axum::Router + Send>;

/// Builds a gRPC server for any tonic services; see the [module docs](super) for an example.
///
/// Every server gets `grpc.health.v1.Health` (SERVING for each added service and for `""` at
/// start, NOT_SERVING on drain) and reflection v1 and v1alpha (your descriptor sets, plus health's
/// and reflection's own), the request layers of [`GrpcLayer`] (415 for non-gRPC requests, a tracing
/// span per call, auth, deadline, concurrency limit), and the connection settings and drain of its
/// [`Config`].
pub struct GrpcServer {
    services: Vec<AddService>,
    names: Vec<&'static str>,
    descriptor_sets: Vec<Bytes>,
    layers: Vec<ApplyLayer>,
    config: Config,
    auth: Option<AuthLayer>,
    auth_exempt: Option<Vec<String>>,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
}

impl fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServer")
            .field("services", &self.names)
            .field("descriptor_sets", &self.descriptor_sets.len())
            .field("layers", &self.layers.len())
            .field("config", &self.config)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Default for GrpcServer {
    fn default() -> Self {
        GrpcServer::builder()
    }
}

impl GrpcServer {
    /// A server with no services of its own yet (only health and reflection), the default
    /// [`Config`], no auth and no TLS.
    pub fn builder() -> Self {
        GrpcServer {
            services: Vec::new(),
            names: Vec::new(),
            descriptor_sets: Vec::new(),
            layers: Vec::new(),
            config: Config::default(),
            auth: None,
            auth_exempt: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The sample server: the default [`GreeterService`] (`Hello {name}`) and its descriptors;
    /// the same as [`with_greeter`](Self::with_greeter)`(GreeterService::default())`.
    pub fn new() -> Self {
        GrpcServer::with_greeter(GreeterService::default())
    }

    /// A server for the helloworld `greeter`, with the [`Config`] applied to it as
    /// [`configure_service!`](crate::configure_service) does, and `helloworld.proto` registered
    /// with reflection. Shorthand for [`add_service_with`](Self::add_service_with) and
    /// [`file_descriptor_set`](Self::file_descriptor_set).
    pub fn with_greeter<G: Greet>(greeter: GreeterService<G>) -> Self {
        GrpcServer::builder()
            .add_service_with(move |config| greeter.into_server(config))
            .file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
    }

    /// Serves `service`, a tonic generated server (`TodosServer::new(todos)`, wrapped in
    /// interceptors or layers if you like) or any tower service with a gRPC service name.
    ///
    /// Its calls are routed by path, `/{NamedService::NAME}/{method}`; health reports `NAME` as
    /// SERVING. The service keeps its own message size and compression settings: set them on the
    /// generated server, or with [`configure_service!`](crate::configure_service) from a
    /// [`Config`], or use [`add_service_with`](Self::add_service_with). Add each service once
    /// (routes cannot overlap), and not health or reflection, which every server has.
    #[must_use]
    pub fn add_service<S>(self, service: S) -> Self
    where
        S: Service<Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.add_service_with(move |_config| service)
    }

    /// Serves the service `make` builds from the server's final [`Config`] (whenever
    /// [`config`](Self::config) is called), for example
    /// `|config| wsgrpc::configure_service!(TodosServer::new(todos), config)`.
    #[must_use]
    pub fn add_service_with<S, F>(mut self, make: F) -> Self
    where
        F: FnOnce(&Config) -> S + Send + 'static,
        S: Service<Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.services.push(Box::new(move |config, routes| {
            routes.add_service(make(config));
        }));
        self
    }

    /// Registers an encoded `google.protobuf.FileDescriptorSet` with reflection (v1 and v1alpha),
    /// so `grpcurl list` and `describe` show its services and types. `build.rs` writes one per
    /// compile (see the README); include it with `include_bytes!`. Call once per set; files that
    /// appear in several sets are indexed once.
    ///
    /// A set that does not decode makes [`into_parts`](Self::into_parts) fail with
    /// [`Error::Reflection`](crate::Error::Reflection).
    #[must_use]
    pub fn file_descriptor_set(mut self, encoded: impl Into<Bytes>) -> Self {
        self.descriptor_sets.push(encoded.into());
        self
    }

    /// Wraps every service (yours, health and reflection) in `layer`, any tower layer: tower-http's,
    /// your own, a metrics layer. As with axum's `Router::layer`, each call wraps what is there
    /// already, so the layer added last runs first (tower's `ServiceBuilder` reads the other way
    /// round). All of them run inside the server's own [`GrpcLayer`] (so auth has already run) and
    /// around each route (an unknown path's `UNIMPLEMENTED` passes through them too).
    ///
    /// The layer sees axum's request and response types (`http::Request<axum::body::Body>`),
    /// which any layer generic over the body accepts. An error it returns is answered as a gRPC
    /// status (`tonic::Status::from_error`: a `Status` in the error's chain, else UNKNOWN), so the
    /// server never drops a call for a layer's error.
    #[must_use]
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<AxumRequest> + Clone + Send + Sync + 'static,
        <L::Service as Service<AxumRequest>>::Response: IntoResponse + 'static,
        <L::Service as Service<AxumRequest>>::Error: Into<BoxError> + 'static,
        <L::Service as Service<AxumRequest>>::Future: Send + 'static,
    {
        self.layers.push(Box::new(move |router: axum::Router| {
            router.layer(ErrorAsStatusLayer(layer))
        }));
        self
    }

    /// Replaces the settings.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Checks every call with `authorize` before its service sees it; the identity it returns is
    /// in the request's extensions (`request.extensions().get::<A::Identity>()`), a refusal is the
    /// status the client gets. `grpc.health.v1.Health` stays open unless
    /// [`auth_exempt`](Self::auth_exempt) says otherwise. See [`Authorize`].
    #[must_use]
    pub fn authorize(mut self, authorize: impl Authorize) -> Self {
        self.auth = Some(AuthLayer::new(authorize));
        self
    }

    /// Requires `authorization: Bearer <token>` on every call except health checks: the
    /// [`BearerToken`] authorizer. A call without the token gets `UNAUTHENTICATED`.
    #[must_use]
    pub fn bearer_token(self, token: impl Into<String>) -> Self {
        self.authorize(BearerToken::new(token))
    }

    /// The services auth lets through unchecked (full names); default `grpc.health.v1.Health`
    /// alone, because orchestrators probe health without credentials. An empty list checks every
    /// call.
    #[must_use]
    pub fn auth_exempt<I, S>(mut self, services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.auth_exempt = Some(services.into_iter().map(Into::into).collect());
        self
    }

    /// Serves over TLS (HTTP/2 negotiated by ALPN: `h2` unless the configuration offers
    /// protocols of its own) instead of cleartext HTTP/2. The handshake must finish within
    /// [`Config::tls_handshake_timeout`].
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls(mut self, tls: impl Into<TlsConfig>) -> Self {
        self.tls = Some(tls.into());
        self
    }

    /// Assembles the services and layers without serving them. Every added service, and the
    /// server as a whole (`""`), starts as SERVING.
    ///
    /// # Errors
    ///
    /// [`Error::Reflection`](crate::Error::Reflection) when a descriptor set does not decode.
    pub async fn into_parts(self) -> Result<GrpcParts> {
        let config = self.config;

        // Reflection describes health and itself too, so `grpcurl list` shows everything served.
        let descriptor_sets = self.descriptor_sets.iter().map(|set| &set[..]).chain([
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]);
        let reflection = ReflectionService::new(descriptor_sets)?;
        for name in &self.names {
            if !reflection.services().iter().any(|known| known == name) {
                tracing::info!(
                    service = name,
                    "no file descriptor set describes this service: reflection will not list it"
                );
            }
        }
        let health = HealthHandle::new(self.names.iter().copied());

        let mut builder = Routes::builder();
        for add in self.services {
            add(&config, &mut builder);
        }
        builder
            .add_service(crate::configure_service!(health.service(), &config))
            .add_service(crate::configure_service!(reflection.v1(), &config))
            .add_service(crate::configure_service!(reflection.v1alpha(), &config));
        let mut routes = builder.routes();
        if !self.layers.is_empty() {
            let mut router = routes.into_axum_router();
            for apply in self.layers {
                router = apply(router);
            }
            routes = Routes::from(router);
        }
        let routes = routes.prepare();
        health.set_serving().await;

        let auth = self.auth.map(|auth| match self.auth_exempt {
            Some(exempt) => auth.exempt(exempt),
            None => auth,
        });
        let layer = GrpcLayer::new(&config, auth);
        Ok(GrpcParts {
            routes,
            layer,
            health,
            config,
            #[cfg(feature = "tls")]
            tls: self.tls,
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down gracefully; see
    /// [`GrpcParts::serve`].
    ///
    /// # Errors
    ///
    /// As [`into_parts`](Self::into_parts).
    pub async fn serve<L: Listener>(
        self,
        listener: L,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        self.into_parts().await?.serve(listener, shutdown).await
    }
}

/// The assembled server: services, layers, health handle and settings.
///
/// Made by [`GrpcServer::into_parts`], or by [`GrpcParts::new`] from routes of your own. Mount the
/// routes behind [`layer`](Self::layer) in another HTTP/2 server
/// (`routes.into_axum_router().layer(layer)`), hand the parts to the one-port
/// [`App`](crate::serve), or [`serve`](Self::serve) them.
#[derive(Debug)]
#[non_exhaustive]
pub struct GrpcParts {
    /// The services: yours, `grpc.health.v1.Health`, and reflection v1 and v1alpha.
    pub routes: Routes,
    /// The request layers (415, tracing, auth, deadline, concurrency limit), as configured.
    pub layer: GrpcLayer,
    /// The serving status reported by the health service.
    pub health: HealthHandle,
    /// The settings the parts were built with; the connection-level ones are for the accept loop.
    pub config: Config,
    /// TLS for [`serve`](Self::serve); `None` serves cleartext HTTP/2.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<TlsConfig>,
}

impl GrpcParts {
    /// Parts from routes assembled by hand: `routes` as given (add `health.service()` to them
    /// if health should be served), the request layers `config` asks for without auth, no TLS.
    /// Set the public fields to change any of it.
    pub fn new(routes: Routes, health: HealthHandle, config: Config) -> Self {
        GrpcParts {
            routes,
            layer: GrpcLayer::new(&config, None),
            health,
            config,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down gracefully.
    ///
    /// Shutdown runs in this order: health reports NOT_SERVING for every service and the server
    /// (watchers are told at once); the listener is closed, so new connections are refused instead of
    /// waiting in the backlog; every connection gets an HTTP/2 GOAWAY, so clients stop starting calls
    /// on it while the calls in flight run to completion; after
    /// [`drain_timeout`](Config::drain_timeout) whatever is still open is closed. It returns once
    /// every connection is closed.
    ///
    /// Errors on a single connection (a reset, a failed TLS handshake) are logged and do not stop
    /// the server.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for accept-loop failures.
    pub async fn serve<L: Listener>(
        self,
        listener: L,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let service = tower_layer::Layer::layer(&self.layer, self.routes);
        #[cfg(feature = "tls")]
        let tls = self.tls.map(|tls| tls.acceptor(&[crate::net::tls::H2]));
        #[cfg(not(feature = "tls"))]
        let tls = None;
        serve::serve(listener, service, self.config, tls, self.health, shutdown).await
    }
}

/// Wraps a user's layer so that its errors become gRPC status responses, as axum's router needs
/// infallible routes.
#[derive(Clone)]
struct ErrorAsStatusLayer<L>(L);

impl<L: Layer<Route>> Layer<Route> for ErrorAsStatusLayer<L> {
    type Service = ErrorAsStatus<L::Service>;

    fn layer(&self, inner: Route) -> Self::Service {
        ErrorAsStatus {
            inner: self.0.layer(inner),
            failed: None,
        }
    }
}

#[derive(Clone)]
struct ErrorAsStatus<S> {
    inner: S,
    /// What `poll_ready` failed with, answered on the next call instead of calling `inner`.
    failed: Option<Status>,
}

impl<S> Service<AxumRequest> for ErrorAsStatus<S>
where
    S: Service<AxumRequest>,
    S::Response: IntoResponse,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        if self.failed.is_none()
            && let Err(error) = std::task::ready!(self.inner.poll_ready(cx))
        {
            self.failed = Some(Status::from_error(error.into()));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AxumRequest) -> Self::Future {
        if let Some(status) = self.failed.take() {
            return Box::pin(std::future::ready(Ok(refusal(status))));
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            Ok(match future.await {
                Ok(response) => response.into_response(),
                Err(error) => refusal(Status::from_error(error.into())),
            })
        })
    }
}

fn refusal(status: Status) -> axum::response::Response {
    tracing::debug!(code = ?status.code(), "a layer failed the call");
    status.into_http::<axum::body::Body>()
}
