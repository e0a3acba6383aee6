//! The accept loop: HTTP/2 connections over TCP (or TLS), and the graceful drain.
//!
//! Every connection runs as a task in one `JoinSet`, which is what makes the drain deadline
//! enforceable: tonic's own `Server` detaches its connection tasks, so it can wait for them but not
//! stop them. Aborting a connection task drops its HTTP/2 connection, which fails its streams and so
//! cancels their handlers too.

use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    task::{Context, Poll},
    time::Duration,
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
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tower_service::Service;

use super::{Config, HealthHandle};
use crate::{BoxError, Result};

type Http2 = hyper::server::conn::http2::Builder<TokioExecutor>;

/// Pause after an accept error that is not about one connection (out of file descriptors, say),
/// so the loop does not spin while the condition lasts.
pub(crate) const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// The connection-level settings.
pub(crate) struct Transport {
    pub(crate) config: Config,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    transport: Transport,
    health: HealthHandle,
    shutdown: impl Future<Output = ()>,
) -> Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let config = &transport.config;
    let http2 = http2_builder(config);
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);

    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "grpc server listening");
    }
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "connection accepted");
                    if config.tcp_nodelay && let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
                    }
                    let connection = Connection {
                        http2: http2.clone(),
                        service: service.clone(),
                        draining: draining.clone(),
                    };
                    #[cfg(feature = "tls")]
                    if let Some(acceptor) = &transport.tls {
                        let acceptor = acceptor.clone();
                        let handshake_timeout = config.tls_handshake_timeout;
                        connections.spawn(connection.run_tls(stream, acceptor, handshake_timeout));
                        continue;
                    }
                    connections.spawn(connection.run(stream));
                }
                Err(error) if is_connection_error(&error) => {
                    tracing::debug!(%error, "accept failed for one connection");
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed, backing off");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            // Reap finished connections so the set only holds live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    tracing::info!(connections = connections.len(), "grpc server shutting down");
    health.set_not_serving().await;
    drop(listener);
    // Every connection answers with GOAWAY and finishes the calls it has.
    let _ = drain.send(true);
    let drained = tokio::time::timeout(config.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            deadline = ?config.drain_timeout,
            "drain deadline passed, closing the remaining connections"
        );
        connections.shutdown().await;
    }
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

/// Errors that concern only the connection being accepted; the listener itself is fine.
pub(crate) fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// What one connection task needs.
struct Connection<S> {
    http2: Http2,
    service: S,
    draining: watch::Receiver<bool>,
}

impl<S, B> Connection<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    async fn run(self, stream: TcpStream) {
        let info = stream.connect_info();
        self.serve(stream, info).await;
    }

    #[cfg(feature = "tls")]
    async fn run_tls(
        mut self,
        stream: TcpStream,
        acceptor: tokio_rustls::TlsAcceptor,
        handshake_timeout: Duration,
    ) {
        let info = stream.connect_info();
        let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
        let stream = tokio::select! {
            result = handshake => match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(peer = ?info.remote_addr(), %error, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = ?info.remote_addr(), "tls handshake timed out");
                    return;
                }
            },
            // A connection still shaking hands has no call in flight: drop it at once.
            () = drain_started(&mut self.draining) => return,
        };
        self.serve(stream, info).await;
    }

    async fn serve<IO>(mut self, io: IO, info: TcpConnectInfo)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = info.remote_addr();
        let service = TowerToHyperService::new(WithConnectInfo {
            inner: self.service,
            info,
        });
        let mut connection = pin!(self.http2.serve_connection(TokioIo::new(io), service));
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = drain_started(&mut self.draining) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = result {
            tracing::debug!(?peer, %error, "connection ended with an error");
        }
    }
}

/// Resolves once the drain has started, or the server is gone without one (shutting down is right
/// then too).
pub(crate) async fn drain_started(draining: &mut watch::Receiver<bool>) {
    let _ = draining.wait_for(|draining| *draining).await;
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
