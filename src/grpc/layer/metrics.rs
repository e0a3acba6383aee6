//! Per-call gRPC metrics: duration by service, method and status, and calls in flight (the names
//! and labels are in [`crate::metrics`]).
//!
//! A call's status is where the gRPC over HTTP/2 protocol puts it: in the response headers when the
//! server answers at once with an error ("Trailers-Only"), otherwise in the trailers after the last
//! message. So the layer looks at the headers first and, when they carry no `grpc-status`, wraps
//! the response body to read the trailers; a streaming call is measured until its last message.
//! A response dropped before its status (the client cancelled, the connection went away) counts
//! as CANCELLED.
//!
//! In [`GrpcLayer`](super::GrpcLayer) it sits outside auth, the deadline and the concurrency
//! limit, so calls they refuse are counted with their status too; only the `415` answer to a
//! non-gRPC content type (not a gRPC call at all) is outside it. Without the `metrics` feature the
//! layer passes calls through untouched: same response type, no wrapper body, no clock read.

#[cfg(not(feature = "metrics"))]
use std::task::{Context, Poll};

use tower_layer::Layer;
#[cfg(not(feature = "metrics"))]
use tower_service::Service;

/// Applies [`GrpcMetrics`] to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl GrpcMetricsLayer {
    /// The layer (it has no settings: the recorder installed in the process decides where the
    /// figures go).
    pub fn new() -> Self {
        GrpcMetricsLayer
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

/// A gRPC service whose calls are recorded in [`crate::metrics`]'s `rpc.server.duration` and
/// `rpc.server.active_requests` (with the `metrics` feature; without it, a pass-through).
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S> GrpcMetrics<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        GrpcMetrics { inner }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

#[cfg(not(feature = "metrics"))]
impl<S, Request> Service<Request> for GrpcMetrics<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.inner.call(request)
    }
}

#[cfg(feature = "metrics")]
pub use recording::{MetricsBody, ResponseFuture};

#[cfg(feature = "metrics")]
mod recording {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http::{HeaderMap, Request, Response};
    use http_body::{Body, Frame, SizeHint};
    use pin_project_lite::pin_project;
    use tower_service::Service;

    use super::GrpcMetrics;
    use crate::metrics::RpcCall;

    /// gRPC status code 2, UNKNOWN: what a call that ended without a status counts as.
    const UNKNOWN: u16 = 2;

    /// The `grpc-status` in `headers` (response headers or trailers), if there is one. A value
    /// that is not a number is UNKNOWN, as the gRPC spec has clients read it.
    fn grpc_status(headers: &HeaderMap) -> Option<u16> {
        let value = headers.get("grpc-status")?;
        Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.parse().ok())
                .unwrap_or(UNKNOWN),
        )
    }

    impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for GrpcMetrics<S>
    where
        S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    {
        type Response = Response<MetricsBody<ResponseBody>>;
        type Error = S::Error;
        type Future = ResponseFuture<S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
            let call = RpcCall::start(request.uri());
            ResponseFuture {
                inner: self.inner.call(request),
                call: Some(call),
            }
        }
    }

    pin_project! {
        /// Response future of [`GrpcMetrics`]: records the call when the headers carry its status,
        /// or hands it to the body.
        pub struct ResponseFuture<F> {
            #[pin]
            inner: F,
            call: Option<RpcCall>,
        }
    }

    impl<F> std::fmt::Debug for ResponseFuture<F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ResponseFuture").finish_non_exhaustive()
        }
    }

    impl<F, E, ResponseBody> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<Response<ResponseBody>, E>>,
    {
        type Output = Result<Response<MetricsBody<ResponseBody>>, E>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            let result = std::task::ready!(this.inner.poll(cx));
            let mut call = this.call.take();
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    // A transport-level failure: no gRPC status ever reaches the client.
                    if let Some(call) = &mut call {
                        call.finish(UNKNOWN);
                    }
                    return Poll::Ready(Err(error));
                }
            };
            // Trailers-Only: the status is in the headers and the body is empty.
            if let (Some(code), Some(call)) = (grpc_status(response.headers()), &mut call) {
                call.finish(code);
            }
            Poll::Ready(Ok(response.map(|inner| MetricsBody { inner, call })))
        }
    }

    pin_project! {
        /// Response body of [`GrpcMetrics`]: records the call when the trailers go by.
        #[derive(Debug)]
        pub struct MetricsBody<B> {
            #[pin]
            inner: B,
            call: Option<RpcCall>,
        }
    }

    impl<B: Default> Default for MetricsBody<B> {
        fn default() -> Self {
            MetricsBody {
                inner: B::default(),
                call: None,
            }
        }
    }

    impl<B: Body> Body for MetricsBody<B> {
        type Data = B::Data;
        type Error = B::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            let this = self.project();
            let frame = std::task::ready!(this.inner.poll_frame(cx));
            if let Some(call) = this.call {
                match &frame {
                    Some(Ok(frame)) => {
                        if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                            call.finish(code);
                        }
                    }
                    // The body failed or ended without trailers: no status reached the client.
                    Some(Err(_)) | None => call.finish(UNKNOWN),
                }
            }
            Poll::Ready(frame)
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn status_is_read_from_headers() {
            let mut headers = HeaderMap::new();
            assert_eq!(grpc_status(&headers), None);
            headers.insert("grpc-status", "5".parse().expect("valid"));
            assert_eq!(grpc_status(&headers), Some(5));
            headers.insert("grpc-status", "five".parse().expect("valid"));
            assert_eq!(grpc_status(&headers), Some(UNKNOWN));
        }
    }
}
