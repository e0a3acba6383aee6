//! The HTTP service type of a one-port [`App`](super::App): what its fallback and its layers are
//! erased to.
//!
//! ```
//! use std::convert::Infallible;
//! use wsgrpc::serve::{Body, BoxHttpService, box_http_service};
//!
//! // Any tower service answering `http::Request<Body>` with a response whose body is an
//! // `http_body::Body<Data = Bytes>` fits, here a closure through tower's `service_fn`.
//! let hello: BoxHttpService = box_http_service(tower::service_fn(
//!     |_request: http::Request<Body>| async {
//!         Ok::<_, Infallible>(http::Response::new(Body::new(String::from("hello"))))
//!     },
//! ));
//! # let _ = hello;
//! ```
//!
//! hyper hands every request over with its own body type (`hyper::body::Incoming`); tower
//! middleware may change it (a decompression layer does), and the gRPC side wants tonic's
//! boxed [`Body`]. So the app boxes the request body once, at the connection, and every service
//! behind it (routing, fallback, the services a [`Layer`](tower_layer::Layer) wraps) takes
//! `Request<Body>` and answers `Response<Body>`. A service's error cannot reach hyper (it would
//! drop the connection, and other requests with it on HTTP/2), so [`box_http_service`] turns
//! it into `500 Internal Server Error` and logs it.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::FutureExt;
use http::{Request, Response, StatusCode};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::BoxError;

/// The HTTP body inside an [`App`](super::App)'s service stack, for requests and responses:
/// tonic's boxed body (`tonic::body::Body`), which wraps any `http_body::Body<Data = Bytes>`
/// with [`Body::new`] without boxing twice.
pub use tonic::body::Body;

/// A cloneable, type-erased HTTP service that never fails: what [`App::fallback`](
/// super::App::fallback) stores and what an [`App::layer`](super::App::layer) wraps
/// (`L: Layer<BoxHttpService>`).
pub type BoxHttpService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Erases `service` into a [`BoxHttpService`]: its response body is boxed into [`Body`], and an
/// error (from `poll_ready` or `call`) becomes `500` with a plain-text body, logged at `error`.
pub fn box_http_service<S, B>(service: S) -> BoxHttpService
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxCloneSyncService::new(Infallibly(service))
}

/// A service whose errors are answered with `500`. Readiness is awaited per call on a clone
/// (as axum's `Route` does), so a service that is not ready delays its request, not the
/// connection.
#[derive(Clone)]
struct Infallibly<S>(S);

impl<S, B> Service<Request<Body>> for Infallibly<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.0
            .clone()
            .oneshot(request)
            .map(|result| {
                Ok(match result {
                    Ok(response) => response.map(Body::new),
                    Err(error) => {
                        let error: BoxError = error.into();
                        tracing::error!(
                            error = &*error as &dyn std::error::Error,
                            "http service failed; answering 500"
                        );
                        internal_error()
                    }
                })
            })
            .boxed()
    }
}

fn internal_error() -> Response<Body> {
    super::assets::plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        .map(|bytes| Body::new(http_body_util::Full::new(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_become_500() {
        let failing = tower::service_fn(|_request: Request<Body>| async {
            Err::<Response<Body>, _>(std::io::Error::other("disk on fire"))
        });
        let mut service = box_http_service(failing);
        let response = service
            .ready()
            .await
            .expect("infallible")
            .call(Request::new(Body::empty()))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
