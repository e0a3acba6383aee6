//! `415 Unsupported Media Type` for requests that are not gRPC.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response, StatusCode, header::CONTENT_TYPE};
use pin_project_lite::pin_project;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

/// Applies [`RequireGrpc`] to a service: `415 Unsupported Media Type` for requests that are not
/// gRPC.
///
/// The gRPC over HTTP/2 spec (PROTOCOL-HTTP2.md, "Requests"): "If Content-Type does not begin with
/// `application/grpc`, gRPC servers SHOULD respond with HTTP status of 415 (Unsupported Media
/// Type). This will prevent other HTTP/2 clients from interpreting a gRPC error response, which
/// uses status 200 (OK), as successful." tonic's routes would otherwise serve a `text/plain` POST
/// with a valid length-prefixed body as a call (`200`, a reply, `grpc-status: 0`), so a plain HTTP
/// client reads any gRPC error as success.
///
/// A request without `content-type` is refused the same way. The answer also carries
/// `grpc-status: 3` (INVALID_ARGUMENT) and a `grpc-message` naming the content type, for clients
/// that read only those. gRPC-Web requests are translated to `application/grpc` by tonic-web before
/// they reach this layer, so they pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireGrpcLayer;

impl RequireGrpcLayer {
    /// Refuses non-gRPC content types with 415; see [`RequireGrpcLayer`].
    pub fn new() -> Self {
        RequireGrpcLayer
    }
}

impl<S> Layer<S> for RequireGrpcLayer {
    type Service = RequireGrpc<S>;

    fn layer(&self, inner: S) -> RequireGrpc<S> {
        RequireGrpc { inner }
    }
}

/// A service that answers `415 Unsupported Media Type` to requests whose `content-type` does not
/// start with `application/grpc`.
#[derive(Debug, Clone)]
pub struct RequireGrpc<S> {
    inner: S,
}

impl<S> RequireGrpc<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether a `content-type` value names gRPC (`application/grpc`, `application/grpc+proto`,
/// `application/grpc;charset=...`). The media type is case-insensitive (RFC 9110 section 8.3.1).
pub(crate) fn is_grpc(content_type: Option<&HeaderValue>) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    content_type.is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= GRPC.len()
            && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
            && matches!(value.get(GRPC.len()), None | Some(b'+' | b';'))
    })
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for RequireGrpc<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    ResponseBody: Default,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Response<ResponseBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let content_type = request.headers().get(CONTENT_TYPE);
        if is_grpc(content_type) {
            return ResponseFuture {
                state: State::Called {
                    inner: self.inner.call(request),
                },
            };
        }
        let shown = content_type.map_or_else(
            || "none".to_owned(),
            |value| String::from_utf8_lossy(value.as_bytes()).into_owned(),
        );
        tracing::debug!(content_type = %shown, path = %request.uri().path(), "non-grpc request refused with 415");
        let mut response =
            Status::invalid_argument(format!("invalid gRPC request content-type {shown:?}"))
                .into_http::<ResponseBody>();
        *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        // The body is empty; say so instead of claiming to be gRPC.
        response.headers_mut().remove(CONTENT_TYPE);
        ResponseFuture {
            state: State::Refused {
                response: Some(response),
            },
        }
    }
}

pin_project! {
    /// Response future of [`RequireGrpc`].
    #[derive(Debug)]
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

pin_project! {
    #[project = StateProjection]
    #[derive(Debug)]
    enum State<F, R> {
        // A gRPC request, passed on.
        Called { #[pin] inner: F },
        // Refused with 415.
        Refused { response: Option<R> },
    }
}

impl<F, R, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Called { inner } => inner.poll(cx),
            StateProjection::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_grpc_media_types_pass() {
        let check = |value: &'static str| is_grpc(Some(&HeaderValue::from_static(value)));
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "Application/GRPC",
            "application/grpc;charset=utf-8",
        ] {
            assert!(check(grpc), "{grpc}");
        }
        for other in [
            "text/plain",
            "application/json",
            "application/grpcx",
            "application/grp",
            "",
        ] {
            assert!(!check(other), "{other}");
        }
        assert!(!is_grpc(None));
    }
}
