//! Per-call deadline (the gRPC spec's term; `ws::layer::TimeoutLayer` is the WebSocket hook timeout):
//! the client's `grpc-timeout` header, capped by an optional server-side timeout.
//!
//! An expired call is answered with `DEADLINE_EXCEEDED` as a complete gRPC response (never a transport
//! error), so the layer's error type stays the inner one and the stack can sit in an axum router. As in
//! tonic, the deadline bounds the time until the response headers: a streaming reply that has started
//! is not cut off.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Applies [`Deadline`] to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer {
    timeout: Option<Duration>,
}

impl DeadlineLayer {
    /// Honours `grpc-timeout`, and caps every call at `timeout` when it is `Some`.
    pub fn new(timeout: Option<Duration>) -> Self {
        DeadlineLayer { timeout }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline::new(inner, self.timeout)
    }
}

/// A service whose calls end with `DEADLINE_EXCEEDED` when their deadline passes.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    timeout: Option<Duration>,
}

impl<S> Deadline<S> {
    /// Wraps `inner`; see [`DeadlineLayer::new`].
    pub fn new(inner: S, timeout: Option<Duration>) -> Self {
        Deadline { inner, timeout }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for Deadline<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    ResponseBody: Default,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let client = grpc_timeout(request.headers());
        let deadline = match (client, self.timeout) {
            (Some(client), Some(server)) => Some(client.min(server)),
            (client, server) => client.or(server),
        };
        ResponseFuture {
            inner: self.inner.call(request),
            sleep: deadline.map(tokio::time::sleep),
        }
    }
}

pin_project! {
    /// Response future of [`Deadline`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<F, ResponseBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
    ResponseBody: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(output);
        }
        match this.sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ok(Status::deadline_exceeded(
                "deadline exceeded",
            )
            .into_http())),
            _ => Poll::Pending,
        }
    }
}

/// Parses `grpc-timeout` as the gRPC over HTTP/2 spec defines it: at most 8 ASCII digits followed by
/// one unit letter. A malformed header is ignored, as tonic and grpc-go do.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.as_bytes();
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        tracing::debug!(?value, "ignoring malformed grpc-timeout header");
        return None;
    }
    let amount = digits
        .iter()
        .fold(0u64, |sum, digit| sum * 10 + u64::from(digit - b'0'));
    let duration = match unit {
        b'H' => Duration::from_secs(amount * 60 * 60),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => {
            tracing::debug!(?value, "ignoring grpc-timeout header with an unknown unit");
            return None;
        }
    };
    Some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &'static str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, http::HeaderValue::from_static(value));
        grpc_timeout(&headers)
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("4S"), Some(Duration::from_secs(4)));
        assert_eq!(parse("500m"), Some(Duration::from_millis(500)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
    }

    #[test]
    fn ignores_malformed_values() {
        assert_eq!(parse("S"), None);
        assert_eq!(parse("123456789S"), None);
        assert_eq!(parse("12x"), None);
        assert_eq!(parse("-1S"), None);
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }
}
