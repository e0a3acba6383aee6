//! Authentication and authorization of every call, by an async check of your own.

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response, header::AUTHORIZATION, request::Parts};
use pin_project_lite::pin_project;
use tonic::{Status, service::Interceptor, transport::server::TcpConnectInfo};
use tower_layer::Layer;
use tower_service::Service;

/// The gRPC service name of the health service, which auth leaves open by default.
pub(crate) const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Decides whether a call may go on, and who made it.
///
/// Implement it on a type that holds what the check needs (a key set, a session store client).
///
/// ```
/// use std::future::{Future, ready};
/// use tonic::Status;
/// use wsgrpc::grpc::layer::{Authorize, Call};
///
/// /// Who called; services read it with `request.extensions().get::<User>()`.
/// #[derive(Clone, Debug)]
/// struct User(String);
///
/// /// Accepts `x-api-key: key-<name>`; only `admin` may call `admin.v1.Admin`.
/// struct ApiKeys;
///
/// impl Authorize for ApiKeys {
///     type Identity = User;
///
///     fn authorize(&self, call: &Call<'_>) -> impl Future<Output = Result<User, Status>> + Send {
///         // A real check would ask a key store or verify a signature (it may await).
///         let user = call
///             .headers()
///             .get("x-api-key")
///             .and_then(|key| key.to_str().ok()?.strip_prefix("key-"))
///             .map(|name| User(name.to_owned()));
///         ready(match user {
///             None => Err(Status::unauthenticated("missing or unknown api key")),
///             Some(user) if call.service() == "admin.v1.Admin" && user.0 != "admin" => {
///                 Err(Status::permission_denied("admins only"))
///             }
///             Some(user) => Ok(user),
///         })
///     }
/// }
///
/// let server = wsgrpc::grpc::GrpcServer::builder().authorize(ApiKeys);
/// # let _ = server;
/// ```
///
/// An [`Authorize`] sees the call before its service does ([`Call`]: path, headers, peer address)
/// and answers with the caller's identity, which [`Auth`] inserts into the request's extensions
/// (read it in a tonic handler with `request.extensions().get::<T>()`), or with the `Status` the
/// client gets: `UNAUTHENTICATED` for missing or bad credentials, `PERMISSION_DENIED` for a known
/// caller who may not make this call (the gRPC status code guide's distinction). The refused call
/// never reaches the service, and takes no concurrency slot.
///
/// `grpc.health.v1.Health` is exempt by default, because load balancers and Kubernetes probes check
/// health without credentials; [`AuthLayer::exempt`] changes the list.
///
/// [`BearerToken`] is one implementation: a static `authorization: Bearer <token>`, compared in
/// constant time. Fine for a service called by a few machines; real systems check per-user
/// credentials (tokens in a store, signed JWTs, mTLS peer certificates) in an `Authorize` of their
/// own. It is also a tonic [`Interceptor`], to guard one service on its own.
pub trait Authorize: Send + Sync + 'static {
    /// Who the caller is; inserted into the request's extensions for the service (any
    /// `Clone + Send + Sync` type; `()` when there is nothing to keep).
    type Identity: Clone + Send + Sync + 'static;

    /// Checks `call`; an `Err` is the status the client gets, and the service is not called.
    fn authorize(
        &self,
        call: &Call<'_>,
    ) -> impl Future<Output = Result<Self::Identity, Status>> + Send;
}

/// What an [`Authorize`] sees of a call: its HTTP/2 request head, before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    parts: &'a Parts,
}

impl<'a> Call<'a> {
    /// A view of a request head.
    pub fn new(parts: &'a Parts) -> Self {
        Call { parts }
    }

    /// The full gRPC service name (`todo.v1.Todos`), from the path `/{service}/{method}`; empty
    /// when the path has no such shape (the router will answer `UNIMPLEMENTED` after auth).
    pub fn service(&self) -> &'a str {
        self.split().0
    }

    /// The method name (`Add`), from the path `/{service}/{method}`.
    pub fn method(&self) -> &'a str {
        self.split().1
    }

    fn split(&self) -> (&'a str, &'a str) {
        let path = self.parts.uri.path().trim_start_matches('/');
        path.split_once('/').unwrap_or(("", ""))
    }

    /// The request headers: the call's metadata (`authorization`, custom `x-...` keys, and the
    /// gRPC protocol headers).
    pub fn headers(&self) -> &'a HeaderMap {
        &self.parts.headers
    }

    /// The client's address, when the server knows it (always on this crate's servers; under
    /// another server, if it inserts tonic's `TcpConnectInfo` or axum's `ConnectInfo`).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.parts
            .extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
    }

    /// The request head itself: URI, version, extensions (a TLS layer's peer certificates, say).
    pub fn parts(&self) -> &'a Parts {
        self.parts
    }
}

/// A boxed future, as the type-erased check returns it.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Authorize`] without its identity type, so one [`AuthLayer`] type holds any check.
trait DynAuthorize: Send + Sync {
    /// Checks the call and inserts the identity into `parts.extensions`.
    fn check<'a>(&'a self, parts: &'a mut Parts) -> BoxFuture<'a, Result<(), Status>>;
}

impl<A: Authorize> DynAuthorize for A {
    fn check<'a>(&'a self, parts: &'a mut Parts) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let identity = self.authorize(&Call::new(parts)).await?;
            parts.extensions.insert(identity);
            Ok(())
        })
    }
}

/// Applies an [`Authorize`] to every call of a service, except the exempt services.
#[derive(Clone)]
pub struct AuthLayer {
    authorize: Arc<dyn DynAuthorize>,
    /// `/{service}/` path prefixes that skip the check.
    exempt: Arc<[String]>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("exempt", &self.exempt)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// Checks every call with `authorize`, except calls to `grpc.health.v1.Health`.
    pub fn new(authorize: impl Authorize) -> Self {
        AuthLayer {
            authorize: Arc::new(authorize),
            exempt: Arc::from([format!("/{HEALTH_SERVICE}/")]),
        }
    }

    /// Replaces the exempt services (full names such as `grpc.health.v1.Health`; the default is
    /// that one alone). An empty list checks every call, health checks included.
    #[must_use]
    pub fn exempt<I, S>(mut self, services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.exempt = services
            .into_iter()
            .map(|service| format!("/{}/", service.as_ref()))
            .collect();
        self
    }

    fn is_exempt(&self, path: &str) -> bool {
        self.exempt
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            policy: Some(self.clone()),
        }
    }
}

/// A service whose calls are checked by an [`Authorize`] first; see [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    /// `None` lets everything through: how [`GrpcLayer`](super::GrpcLayer) leaves auth off without
    /// changing its service type.
    policy: Option<AuthLayer>,
}

impl<S: fmt::Debug> fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("enabled", &self.policy.is_some())
            .finish()
    }
}

impl<S> Auth<S> {
    pub(crate) fn disabled(inner: S) -> Self {
        Auth {
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

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for Auth<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RequestBody: Send + 'static,
    ResponseBody: Default + Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Response<ResponseBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let policy = match &self.policy {
            Some(policy) => policy,
            None => {
                return ResponseFuture::direct(self.inner.call(request));
            }
        };
        if policy.is_exempt(request.uri().path()) {
            return ResponseFuture::direct(self.inner.call(request));
        }
        // The check is async, so the call happens later: take the service that was made ready
        // and leave a fresh clone in its place (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authorize = Arc::clone(&policy.authorize);
        let (mut parts, body) = request.into_parts();
        ResponseFuture {
            state: State::Checked {
                future: Box::pin(async move {
                    match authorize.check(&mut parts).await {
                        Ok(()) => inner.call(Request::from_parts(parts, body)).await,
                        Err(status) => {
                            tracing::debug!(path = %parts.uri.path(), code = ?status.code(), "call refused by auth");
                            Ok(status.into_http())
                        }
                    }
                }),
            },
        }
    }
}

pin_project! {
    /// Response future of [`Auth`].
    pub struct ResponseFuture<F, R, E> {
        #[pin]
        state: State<F, R, E>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F, R, E> {
        // Exempt, or auth off: the inner service's own future.
        Direct { #[pin] inner: F },
        // The check, then the call.
        Checked { future: BoxFuture<'static, Result<R, E>> },
    }
}

impl<F, R, E> ResponseFuture<F, R, E> {
    fn direct(inner: F) -> Self {
        ResponseFuture {
            state: State::Direct { inner },
        }
    }
}

impl<F, R, E> fmt::Debug for ResponseFuture<F, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, R, E> Future for ResponseFuture<F, R, E>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Direct { inner } => inner.poll(cx),
            StateProjection::Checked { future } => future.as_mut().poll(cx),
        }
    }
}

/// The secret a client must present as `authorization: Bearer <token>`: the simplest
/// [`Authorize`] (identity `()`), and a tonic [`Interceptor`].
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

impl Authorize for BearerToken {
    type Identity = ();

    fn authorize(&self, call: &Call<'_>) -> impl Future<Output = Result<(), Status>> + Send {
        std::future::ready(self.check(call.headers()))
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

    #[test]
    fn call_splits_the_path() {
        let (parts, ()) = Request::post("/todo.v1.Todos/Add")
            .body(())
            .expect("valid")
            .into_parts();
        let call = Call::new(&parts);
        assert_eq!((call.service(), call.method()), ("todo.v1.Todos", "Add"));
        assert_eq!(call.peer_addr(), None);
    }
}
