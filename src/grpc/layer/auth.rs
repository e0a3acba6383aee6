//! Bearer-token authentication: `authorization: Bearer <token>` or `UNAUTHENTICATED`.
//!
//! [`BearerToken`] holds the secret and the check; it is a tonic [`Interceptor`] for guarding one
//! service (`GreeterServer::with_interceptor`). [`BearerAuthLayer`] applies the same check to every
//! route of a stack except the exempt ones: the server exempts `grpc.health.v1.Health`, because load
//! balancers and Kubernetes probes check health without credentials.
//!
//! The token is compared in constant time, so response timing does not reveal how much of a guess
//! was right.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response, header::AUTHORIZATION};
use pin_project_lite::pin_project;
use tonic::{Status, service::Interceptor};
use tower_layer::Layer;
use tower_service::Service;

/// The secret a client must present as `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct BearerToken {
    token: Arc<[u8]>,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// Expects `token` (without the `Bearer ` prefix).
    pub fn new(token: impl Into<String>) -> Self {
        BearerToken {
            token: Arc::from(token.into().into_bytes()),
        }
    }

    /// Whether `headers` carry this token; `Err` is the `UNAUTHENTICATED` status to answer with.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Status> {
        self.check_authorization(headers.get(AUTHORIZATION).map(|value| value.as_bytes()))
    }

    fn check_authorization(&self, value: Option<&[u8]>) -> Result<(), Status> {
        let Some(value) = value else {
            return Err(Status::unauthenticated("missing bearer token"));
        };
        // The scheme name is case-insensitive (RFC 7235 section 2.1).
        let presented = match value.split_at_checked(7) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => token,
            _ => {
                return Err(Status::unauthenticated(
                    "authorization is not a bearer token",
                ));
            }
        };
        if constant_time_eq(presented, &self.token) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let value = request.metadata().get(AUTHORIZATION.as_str());
        self.check_authorization(value.map(|value| value.as_bytes()))?;
        Ok(request)
    }
}

/// Compares without an early exit, so the time taken does not depend on where the inputs differ.
/// The length is not secret (it would leak through the request size anyway).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Applies [`BearerAuth`] to a service.
#[derive(Debug, Clone)]
pub struct BearerAuthLayer {
    policy: Arc<Policy>,
}

#[derive(Debug)]
struct Policy {
    token: BearerToken,
    exempt: Vec<String>,
}

impl BearerAuthLayer {
    /// Requires `token` on every call.
    pub fn new(token: BearerToken) -> Self {
        BearerAuthLayer {
            policy: Arc::new(Policy {
                token,
                exempt: Vec::new(),
            }),
        }
    }

    /// Lets calls to the gRPC service `service` (a full name such as `grpc.health.v1.Health`)
    /// through without a token.
    pub fn exempt(mut self, service: &str) -> Self {
        let prefix = format!("/{service}/");
        match Arc::get_mut(&mut self.policy) {
            Some(policy) => policy.exempt.push(prefix),
            None => {
                let mut exempt = self.policy.exempt.clone();
                exempt.push(prefix);
                self.policy = Arc::new(Policy {
                    token: self.policy.token.clone(),
                    exempt,
                });
            }
        }
        self
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> BearerAuth<S> {
        BearerAuth {
            inner,
            policy: Some(Arc::clone(&self.policy)),
        }
    }
}

/// A service that refuses calls without the bearer token with `UNAUTHENTICATED`.
#[derive(Debug, Clone)]
pub struct BearerAuth<S> {
    inner: S,
    /// `None` lets everything through: how [`GrpcLayer`](super::GrpcLayer) leaves auth off without
    /// changing its service type.
    policy: Option<Arc<Policy>>,
}

impl<S> BearerAuth<S> {
    pub(crate) fn disabled(inner: S) -> Self {
        BearerAuth {
            inner,
            policy: None,
        }
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

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for BearerAuth<S>
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
        if let Some(policy) = &self.policy {
            let path = request.uri().path();
            let exempt = policy
                .exempt
                .iter()
                .any(|prefix| path.starts_with(prefix.as_str()));
            if !exempt && let Err(status) = policy.token.check(request.headers()) {
                return ResponseFuture {
                    state: State::Refused {
                        response: Some(status.into_http()),
                    },
                };
            }
        }
        ResponseFuture {
            state: State::Called {
                inner: self.inner.call(request),
            },
        }
    }
}

pin_project! {
    /// Response future of [`BearerAuth`].
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
        // The call was let through.
        Called { #[pin] inner: F },
        // The call was refused.
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

    fn headers(authorization: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, http::HeaderValue::from_static(authorization));
        headers
    }

    #[test]
    fn accepts_only_the_right_token() {
        let token = BearerToken::new("s3cret");
        assert!(token.check(&headers("Bearer s3cret")).is_ok());
        assert!(token.check(&headers("bearer s3cret")).is_ok());
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret!",
            "Basic s3cret",
            "Bearer",
            "",
        ] {
            let status = token.check(&headers(wrong)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{wrong:?}");
        }
        let status = token.check(&HeaderMap::new()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn debug_does_not_leak_the_token() {
        assert!(!format!("{:?}", BearerToken::new("s3cret")).contains("s3cret"));
    }
}
