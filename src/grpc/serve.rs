//! HTTP/2 on the crate's serving core ([`crate::net`]): what the gRPC server does with each
//! accepted connection, and its graceful drain.
//!
//! Every connection runs as a task in one `JoinSet`, which is what makes the drain deadline
//! enforceable: tonic's own `Server` detaches its connection tasks, so it can wait for them but not
//! stop them. Aborting a connection task drops its HTTP/2 connection, which fails its streams and so
//! cancels their handlers too.
//!
//! Each connection also carries its own lifetime policy: after
//! [`Config::max_connection_age`] (jittered by +-10%, as grpc-go does) it sends `GOAWAY` and gives
//! its calls in flight [`Config::max_connection_age_grace`] to finish, the same way the server's
//! drain does for all connections at once.

use std::{
    convert::Infallible,
    future::Future,
    hash::{BuildHasher, Hasher, RandomState},
    net::SocketAddr,
    pin::pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulConnection},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    task::JoinSet,
};
use tonic::transport::server::TcpConnectInfo;
use tower_service::Service;

mod coalesce;

use self::coalesce::Coalesce;
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
        keepalive: config.tcp_keepalive_settings(),
        tls,
        tls_handshake_timeout: config.tls_handshake_timeout,
    };
    let drain_timeout = config.drain_timeout;
    let connector = Arc::new(GrpcConnector {
        protocols: protocols(&config),
        max_age: config.max_connection_age,
        max_age_grace: config.max_connection_age_grace,
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

/// HTTP/2 only, or (with [`Config::accept_http1`]) hyper-util's server that reads the preface
/// and serves HTTP/1.1 too.
fn protocols(config: &Config) -> Protocols {
    if config.accept_http1 {
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1().timer(TokioTimer::new());
        configure_http2!(auto.http2(), config);
        Protocols::Auto(auto)
    } else {
        let mut http2 = Http2::new(TokioExecutor::new());
        configure_http2!(http2, config);
        Protocols::Http2(http2)
    }
}

/// The connection builder a [`GrpcConnector`] uses.
enum Protocols {
    Http2(Http2),
    Auto(auto::Builder<TokioExecutor>),
}

/// Applies the connection-level HTTP/2 settings of a [`Config`] to a hyper HTTP/2 builder: hyper's
/// own `http2::Builder` in this accept loop, hyper-util's `auto::Builder::http2()` in the one-port
/// server. A macro because the two builders share these methods but no trait.
macro_rules! configure_http2 {
    ($builder:expr, $config:expr) => {{
        let config: &$crate::grpc::Config = $config;
        let builder = &mut $builder;
        builder
            .timer(::hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .keep_alive_interval(config.http2_keepalive_interval)
            .keep_alive_timeout(config.http2_keepalive_timeout)
            .initial_stream_window_size(config.initial_stream_window_size)
            .initial_connection_window_size(config.initial_connection_window_size)
            .max_frame_size(config.max_frame_size)
            .max_pending_accept_reset_streams(config.max_pending_accept_reset_streams);
        if let Some(bytes) = config.http2_max_header_list_size {
            builder.max_header_list_size(bytes);
        }
        // Last: hyper turns the adaptive window off again when a window size is set after it.
        if config.http2_adaptive_window {
            builder.adaptive_window(true);
        }
    }};
}
pub(crate) use configure_http2;

/// The gRPC side of the accept loop: HTTP/2 on every connection.
struct GrpcConnector<S> {
    protocols: Protocols,
    max_age: Option<Duration>,
    max_age_grace: Option<Duration>,
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
        let lifetime = Lifetime {
            max_age: self
                .max_age
                .map(|age| jittered(age, RandomState::new().build_hasher().finish())),
            grace: self.max_age_grace,
        };
        match &self.protocols {
            Protocols::Http2(http2) => {
                let connection = http2.serve_connection(TokioIo::new(Coalesce::new(io)), service);
                Either::Left(run(connection, peer, shutdown, lifetime))
            }
            // hyper-util's connection borrows its builder, so it is made inside the task. Boxed,
            // so the larger HTTP/1.1-or-HTTP/2 state does not enlarge every HTTP/2-only task.
            Protocols::Auto(_) => Either::Right(Box::pin(async move {
                let Protocols::Auto(auto) = &self.protocols else {
                    return;
                };
                let connection = auto.serve_connection(TokioIo::new(Coalesce::new(io)), service);
                run(connection, peer, shutdown, lifetime).await;
            })),
        }
    }
}

/// How long one connection may live: [`Config::max_connection_age`] (already jittered) and
/// [`Config::max_connection_age_grace`].
#[derive(Clone, Copy)]
struct Lifetime {
    max_age: Option<Duration>,
    grace: Option<Duration>,
}

/// Runs one connection until it ends: at the server's shutdown or at its maximum age it sends
/// GOAWAY (the client starts no new call here, the calls in flight finish); after the age's grace
/// it is dropped with whatever is still running.
async fn run<C>(connection: C, peer: Option<SocketAddr>, shutdown: Shutdown, lifetime: Lifetime)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut connection = pin!(connection);
    // Boxed and only when configured: a timer entry in every connection's task would add to the
    // memory of each idle connection.
    let mut age_timer = lifetime
        .max_age
        .map(|age| Box::pin(tokio::time::sleep(age)));
    let aged = async {
        match &mut age_timer {
            Some(timer) => timer.await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.triggered() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = aged => {
            tracing::debug!(?peer, "maximum connection age reached: GOAWAY");
            connection.as_mut().graceful_shutdown();
            match lifetime.grace {
                None => connection.await,
                Some(grace) => match tokio::time::timeout(grace, connection).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::debug!(?peer, ?grace, "connection age grace passed: closing");
                        return;
                    }
                },
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(?peer, %error, "connection ended with an error");
    }
}

/// `age` moved by up to 10% either way, uniformly by `random`: grpc-go's jitter for
/// `MaxConnectionAge` (`internal/transport/http2_server.go`), so connections opened together (a
/// fleet of clients after a deploy) do not all reconnect at the same moment.
fn jittered(age: Duration, random: u64) -> Duration {
    let tenth = age / 10;
    // A fraction in [0, 2] of a tenth: the offset from `age - tenth`.
    let fraction = random as f64 / u64::MAX as f64 * 2.0;
    (age - tenth).saturating_add(tenth.mul_f64(fraction))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let age = Duration::from_secs(100);
        assert_eq!(jittered(age, 0), Duration::from_secs(90));
        assert_eq!(jittered(age, u64::MAX), Duration::from_secs(110));
        let middle = jittered(age, u64::MAX / 2);
        assert!(
            middle.abs_diff(age) < Duration::from_millis(1),
            "{middle:?}"
        );
        // Random draws land all over the range, not on one value.
        let draws: Vec<Duration> = (0..200)
            .map(|_| jittered(age, RandomState::new().build_hasher().finish()))
            .collect();
        assert!(
            draws
                .iter()
                .all(|draw| (90..=110).contains(&draw.as_secs()))
        );
        assert!(draws.iter().any(|draw| *draw < Duration::from_secs(97)));
        assert!(draws.iter().any(|draw| *draw > Duration::from_secs(103)));
        assert_eq!(jittered(Duration::ZERO, 12345), Duration::ZERO);
        assert!(jittered(Duration::MAX, u64::MAX) <= Duration::MAX);
    }
}
