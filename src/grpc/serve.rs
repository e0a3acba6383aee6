//! HTTP/2 on the crate's serving core ([`crate::net`]): what the gRPC server does with each
//! accepted connection, and its graceful drain.
//!
//! Every connection runs as a task in one `JoinSet`, which is what makes the drain deadline
//! enforceable: tonic's own `Server` detaches its connection tasks, so it can wait for them but not
//! stop them. Aborting a connection task drops its HTTP/2 connection, which fails its streams and so
//! cancels their handlers too.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    task::JoinSet,
};
use tonic::transport::server::TcpConnectInfo;
use tower_service::Service;

use super::{Config, HealthHandle};
use crate::net::serve::{AcceptOptions, Connector, Tls, accept_until, drain};
use crate::net::{Listener, Shutdown};
use crate::{BoxError, Result};

type Http2 = hyper::server::conn::http2::Builder<TokioExecutor>;

/// Serves `service` on `listener` with the connection-level settings of `config`, until `signal`
/// completes; then drains as [`GrpcParts::serve`](super::GrpcParts::serve) describes.
pub(crate) async fn serve<L, S, B>(
    listener: L,
    service: S,
    config: Config,
    tls: Option<Tls>,
    health: HealthHandle,
    signal: impl Future<Output = ()>,
) -> Result<()>
where
    L: Listener,
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let options = AcceptOptions {
        nodelay: config.tcp_nodelay,
        tls,
        tls_handshake_timeout: config.tls_handshake_timeout,
    };
    let drain_timeout = config.drain_timeout;
    let connector = Arc::new(GrpcConnector {
        http2: http2_builder(&config),
        service,
    });
    let shutdown = Shutdown::new();
    let mut connections = JoinSet::new();
    let listener = accept_until(
        listener,
        &connector,
        &options,
        signal,
        &shutdown,
        &mut connections,
    )
    .await;
    tracing::info!(connections = connections.len(), "grpc server shutting down");
    // NOT_SERVING first, so load balancers watching health move traffic away; then new
    // connections are refused; then every connection sends GOAWAY and finishes its calls.
    health.set_not_serving().await;
    drop(listener);
    shutdown.trigger();
    drain(&mut connections, drain_timeout, "grpc server").await;
    tracing::info!("grpc server stopped");
    Ok(())
}

fn http2_builder(config: &Config) -> Http2 {
    let mut http2 = Http2::new(TokioExecutor::new());
    configure_http2!(http2, config);
    http2
}

/// Applies the connection-level HTTP/2 settings of a [`Config`] to a hyper HTTP/2 builder: hyper's
/// own `http2::Builder` in this accept loop, hyper-util's `auto::Builder::http2()` in the one-port
/// server. A macro because the two builders share these methods but no trait.
macro_rules! configure_http2 {
    ($builder:expr, $config:expr) => {{
        let config: &$crate::grpc::Config = $config;
        $builder
            .timer(::hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .keep_alive_interval(config.http2_keepalive_interval)
            .keep_alive_timeout(config.http2_keepalive_timeout)
            .initial_stream_window_size(config.initial_stream_window_size)
            .initial_connection_window_size(config.initial_connection_window_size);
    }};
}
pub(crate) use configure_http2;

/// The gRPC side of the accept loop: HTTP/2 on every connection.
struct GrpcConnector<S> {
    http2: Http2,
    service: S,
}

impl<S, B> Connector for GrpcConnector<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Ticket = ();

    fn admit(&self, _peer: Option<SocketAddr>) -> Option<()> {
        Some(())
    }

    fn serve<Io>(
        self: Arc<Self>,
        io: Io,
        peer: Option<SocketAddr>,
        (): (),
        shutdown: Shutdown,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let info = TcpConnectInfo {
            local_addr: None,
            remote_addr: peer,
        };
        let service = TowerToHyperService::new(WithConnectInfo {
            inner: self.service.clone(),
            info,
        });
        let connection = self.http2.serve_connection(TokioIo::new(io), service);
        async move {
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.triggered() => {
                    // GOAWAY: the client starts no new call here; the calls in flight finish.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(?peer, %error, "connection ended with an error");
            }
        }
    }
}

/// Puts the connection's addresses into each request, so handlers can call
/// `tonic::Request::remote_addr` as they would under tonic's own server.
#[derive(Clone)]
struct WithConnectInfo<S> {
    inner: S,
    info: TcpConnectInfo,
}

impl<S, B> Service<Request<B>> for WithConnectInfo<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.info.clone());
        self.inner.call(request)
    }
}
