//! A tracing span per call, as tonic's `Server::trace_fn` gives one: which service and method,
//! the gRPC status it ended with, and how long it took.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Span, field::Empty};

/// gRPC status codes the span records when the response says none.
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;

/// Applies [`Trace`] to a service: a tracing span per call.
///
/// The span is `grpc.call` at INFO level (target `wsgrpc::grpc::layer::trace`), with the field
/// names of OpenTelemetry's RPC conventions:
///
/// | field | value |
/// | --- | --- |
/// | `rpc.service` | full service name, `todo.v1.Todos` |
/// | `rpc.method` | method name, `Add` |
/// | `rpc.grpc.status_code` | the status code as a number (0 OK, 5 NOT_FOUND...), recorded when the call ends |
/// | `latency_us` | microseconds from the request head to the end of the response (its trailers), recorded when the call ends |
///
/// The service's handler runs inside the span, so its own events carry these fields. The status
/// comes from the response: `grpc-status` in the headers of a trailers-only answer (every refusal),
/// or in the trailers of a complete one. A response dropped before its end (the client cancelled,
/// or the connection went away) records `1` (CANCELLED); one that ended without any `grpc-status`
/// records `2` (UNKNOWN), as a client would read it. With no subscriber interested in the span,
/// the cost is one callsite check per call: no clock is read and nothing is recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl TraceLayer {
    /// A span per call; see [`TraceLayer`].
    pub fn new() -> Self {
        TraceLayer
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

/// A service whose every call runs in a `grpc.call` span; see [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
}

impl<S> Trace<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for Trace<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
{
    type Response = Response<TracedBody<ResponseBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        let span = tracing::info_span!(
            "grpc.call",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            latency_us = Empty,
        );
        if span.is_disabled() {
            // No subscriber wants the span: skip the clock and the bookkeeping altogether.
            return ResponseFuture {
                inner: self.inner.call(request),
                record: None,
            };
        }
        let start = Instant::now();
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture {
            inner,
            record: Some(Record {
                span,
                start,
                status: None,
            }),
        }
    }
}

/// What the span records once the call is over: on drop, so exactly once, however it ends.
#[derive(Debug)]
struct Record {
    span: Span,
    start: Instant,
    status: Option<i32>,
}

impl Record {
    fn read_status(&mut self, headers: &HeaderMap) {
        if let Some(code) = headers
            .get("grpc-status")
            .and_then(|value| value.to_str().ok()?.parse().ok())
        {
            self.status = Some(code);
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let latency = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.span
            .record("rpc.grpc.status_code", self.status.unwrap_or(CANCELLED))
            .record("latency_us", latency);
    }
}

pin_project! {
    /// Response future of [`Trace`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: Option<Record>,
    }
}

impl<F, ResponseBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
{
    type Output = Result<Response<TracedBody<ResponseBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = {
            let _entered = this.record.as_ref().map(|record| record.span.enter());
            std::task::ready!(this.inner.poll(cx))
        };
        let mut record = this.record.take();
        Poll::Ready(output.map(|response| {
            if let Some(record) = &mut record {
                record.read_status(response.headers());
            }
            response.map(|inner| TracedBody { inner, record })
        }))
    }
}

pin_project! {
    /// A response body that records its call's status and latency in the span when it ends.
    #[derive(Debug, Default)]
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        record: Option<Record>,
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = {
            let _entered = this.record.as_ref().map(|record| record.span.enter());
            std::task::ready!(this.inner.poll_frame(cx))
        };
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(trailers), Some(record)) = (frame.trailers_ref(), this.record.as_mut())
                {
                    record.read_status(trailers);
                }
            }
            Some(Err(_)) => {}
            None => {
                if let Some(mut record) = this.record.take() {
                    record.status.get_or_insert(UNKNOWN);
                }
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
