//! The server builder: the Greeter plus what production needs, assembled once.
//!
//! [`GrpcServer`] collects the [`Greeter`], the [`Config`] and the optional token and TLS settings.
//! [`GrpcServer::into_parts`] assembles them into [`GrpcParts`]: tonic [`Routes`] (Greeter, health,
//! reflection v1 and v1alpha) and the [`GrpcLayer`] to put in front of them. Those are plain tower
//! services, so a server that shares one port between gRPC and other protocols can mount them itself;
//! [`GrpcParts::serve`] is this crate's own HTTP/2 accept loop for the common case.

use std::future::Future;

use tonic::{server::NamedService, service::Routes};

use super::{
    Config, GrpcLayer, HealthHandle,
    greet::{Greet, Hello},
    greeter::Greeter,
    layer::{BearerAuthLayer, BearerToken},
    pb::{self, greeter_server::GreeterServer},
    serve,
};
use crate::Result;
use crate::net::Listener;
#[cfg(feature = "tls")]
use crate::net::TlsConfig;

/// The gRPC service name of the health service, which bearer auth leaves open for probes.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Builds a gRPC server around a [`Greeter`]; see the [module docs](super) for an example.
#[derive(Debug)]
pub struct GrpcServer<G = Hello> {
    greeter: Greeter<G>,
    config: Config,
    token: Option<BearerToken>,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
}

impl GrpcServer<Hello> {
    /// A server for the default Greeter (`Hello {name}`) with the default [`Config`].
    pub fn new() -> Self {
        GrpcServer::with_greeter(Greeter::default())
    }
}

impl Default for GrpcServer<Hello> {
    fn default() -> Self {
        GrpcServer::new()
    }
}

impl<G: Greet> GrpcServer<G> {
    /// A server for `greeter`, with the default [`Config`].
    pub fn with_greeter(greeter: Greeter<G>) -> Self {
        GrpcServer {
            greeter,
            config: Config::default(),
            token: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Replaces the settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Requires `authorization: Bearer <token>` on every call except health checks, which
    /// orchestrators make without credentials. A call without the token gets `UNAUTHENTICATED`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(BearerToken::new(token));
        self
    }

    /// Serves over TLS (HTTP/2 negotiated by ALPN: `h2` unless the configuration offers
    /// protocols of its own) instead of cleartext HTTP/2. The handshake must finish within
    /// [`Config::tls_handshake_timeout`].
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: impl Into<TlsConfig>) -> Self {
        self.tls = Some(tls.into());
        self
    }

    /// Assembles the services and layers without serving them.
    ///
    /// The health of `helloworld.Greeter` and of the server as a whole (`""`) starts as SERVING.
    pub async fn into_parts(self) -> Result<GrpcParts> {
        let config = self.config;

        let mut greeter = GreeterServer::new(self.greeter)
            .max_decoding_message_size(config.max_decoding_message_size)
            .max_encoding_message_size(config.max_encoding_message_size);
        for &encoding in &config.accept_compressed {
            greeter = greeter.accept_compressed(encoding);
        }
        for &encoding in &config.send_compressed {
            greeter = greeter.send_compressed(encoding);
        }

        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = HealthHandle::new(
            reporter,
            vec![<GreeterServer<Greeter<G>> as NamedService>::NAME],
        );
        health.set_serving().await;

        // Reflection describes the health service too, so `grpcurl list` shows everything served.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };

        let routes = Routes::new(greeter)
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .prepare();

        let auth = self
            .token
            .map(|token| BearerAuthLayer::new(token).exempt(HEALTH_SERVICE));
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
/// Add services of your own to [`routes`](Self::routes) before serving, or mount the routes behind
/// [`layer`](Self::layer) in another HTTP/2 server (`routes.into_axum_router().layer(layer)`).
#[derive(Debug)]
#[non_exhaustive]
pub struct GrpcParts {
    /// `helloworld.Greeter`, `grpc.health.v1.Health`, and reflection v1 and v1alpha.
    pub routes: Routes,
    /// Auth, deadline and concurrency limit, as configured.
    pub layer: GrpcLayer,
    /// The serving status reported by the health service.
    pub health: HealthHandle,
    /// The settings the parts were built with; the connection-level ones are for the accept loop.
    pub config: Config,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
}

impl GrpcParts {
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
