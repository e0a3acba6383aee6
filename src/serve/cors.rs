//! Which web pages may call the gRPC-Web endpoint: the CORS policy.
//!
//! ```
//! use std::time::Duration;
//! use wsgrpc::serve::Cors;
//!
//! // The default: only pages served from this very host:port (no CORS headers needed).
//! let same_origin = Cors::default();
//! // A front end served elsewhere:
//! let cors = Cors::allow_origins(["https://app.example.com"]).max_age(Duration::from_secs(600));
//! # let _ = (same_origin, cors);
//! ```
//!
//! tonic-web 0.14 translates gRPC-Web but leaves CORS to the server (its docs point to
//! tower-http), so the policy is here, as a value with a safe default rather than a hard-coded
//! rule: **same origin only**, decided by the same [`OriginPolicy`] (RFC 6454 comparison, default
//! ports filled in) as the WebSocket upgrade's. A page served by the same one-port server (the
//! usual case) needs no CORS at all; a cross-origin request from an origin that is not allowed gets
//! `403` before it reaches the service (a browser would block the answer anyway, but the call would
//! have run).
//!
//! For allowed origins the CORS protocol itself is tower-http's [`CorsLayer`]: a preflight is
//! answered `200` with the origin echoed, `POST` allowed, **the request headers the preflight asks
//! for echoed** (`Access-Control-Request-Headers`: a grpc-web client sends `x-grpc-web`,
//! `x-user-agent` and whatever custom metadata the application adds, `x-request-id`, `x-tenant`...;
//! grpc-web's browser requirements say to allow them) and cached for [`Cors::max_age`]. Responses
//! expose `grpc-status`, `grpc-message`, `grpc-status-details-bin` and `grpc-encoding`, plus the
//! custom headers and trailers named by [`Cors::expose_headers`]. Cookies and HTTP auth go with
//! cross-origin calls only after [`Cors::allow_credentials`].

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderName};
use http::{Method, Request, Response, StatusCode};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_layer::Layer;
use tower_service::Service;

use crate::origin::{OriginCheck, OriginPolicy};

/// Response headers a gRPC-Web client must be able to read.
const EXPOSE_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
];

/// The CORS policy of the gRPC-Web endpoint. Default: same origin only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    origins: OriginPolicy,
    max_age: Duration,
    credentials: bool,
    expose: Vec<HeaderName>,
}

impl Default for Cors {
    fn default() -> Self {
        Cors::same_origin()
    }
}

impl Cors {
    /// Only pages of the same origin (scheme, host and port of this server) may call; this is
    /// the default.
    pub fn same_origin() -> Self {
        Cors {
            origins: OriginPolicy::same_origin(),
            max_age: Duration::from_secs(3600),
            credentials: false,
            expose: Vec::new(),
        }
    }

    /// Pages of these origins (`https://app.example.com`) may call, besides the same origin;
    /// compared as (scheme, host, port) tuples per RFC 6454 ([`OriginPolicy::allow`]).
    ///
    /// # Panics
    ///
    /// If an entry is not an origin (`scheme://host[:port]`).
    pub fn allow_origins<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Cors {
            origins: OriginPolicy::allow(origins),
            ..Cors::same_origin()
        }
    }

    /// Any page on the web may call. An explicit opt-in, for public APIs.
    pub fn allow_any_origin() -> Self {
        Cors {
            origins: OriginPolicy::any(),
            ..Cors::same_origin()
        }
    }

    /// How long browsers may cache a preflight answer (`Access-Control-Max-Age`, whole seconds).
    /// Default one hour.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Lets allowed cross-origin pages send cookies and HTTP authentication with their calls
    /// (`Access-Control-Allow-Credentials: true`; the page must also set `withCredentials`).
    /// Default off: a page's `authorization` metadata header works without it.
    #[must_use]
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// Also lets pages read these response headers and trailers (custom metadata such as
    /// `x-request-id`), besides the gRPC ones that are always exposed.
    #[must_use]
    pub fn expose_headers<I>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = HeaderName>,
    {
        self.expose.extend(headers);
        self
    }

    /// tower-http's layer for the origins that passed [`Cors::check`]: everything it sees is
    /// allowed, so it mirrors the origin.
    fn cors_layer(&self) -> CorsLayer {
        let expose: Vec<HeaderName> = EXPOSE_HEADERS
            .into_iter()
            .map(HeaderName::from_static)
            .chain(self.expose.iter().cloned())
            .collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::mirror_request())
            .allow_methods([Method::POST])
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(expose)
            .allow_credentials(self.credentials)
            .max_age(self.max_age)
    }

    /// Whether a request's origin may call at all.
    fn allows<B>(&self, request: &Request<B>) -> bool {
        match self.origins.check(request) {
            OriginCheck::NoOrigin | OriginCheck::SameOrigin | OriginCheck::Allowed => true,
            OriginCheck::Refused => {
                tracing::debug!(
                    origin = ?request.headers().get(header::ORIGIN),
                    "cross-origin grpc-web request refused"
                );
                false
            }
        }
    }
}

impl<S> Layer<S> for Cors {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> CorsService<S> {
        CorsService {
            policy: Arc::new(self.clone()),
            inner: self.cors_layer().layer(inner),
        }
    }
}

/// A service behind a [`Cors`] policy: `403` for origins that are not allowed, tower-http's CORS
/// handling for the rest.
#[derive(Debug, Clone)]
pub struct CorsService<S> {
    policy: Arc<Cors>,
    inner: tower_http::cors::Cors<S>,
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for CorsService<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>, Error = Infallible>,
    ResponseBody: Default,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = futures::future::Either<
        <tower_http::cors::Cors<S> as Service<Request<RequestBody>>>::Future,
        std::future::Ready<Result<Response<ResponseBody>, Infallible>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        if self.policy.allows(&request) {
            return futures::future::Either::Left(self.inner.call(request));
        }
        let mut response = Response::new(ResponseBody::default());
        *response.status_mut() = StatusCode::FORBIDDEN;
        futures::future::Either::Right(std::future::ready(Ok(response)))
    }
}

#[cfg(test)]
mod tests {
    use std::future::ready;

    use tower_service::Service;

    use super::*;

    /// A stand-in for the gRPC-Web service: answers 200 with an empty body.
    fn service()
    -> impl Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone {
        tower_service_fn(|_request: Request<()>| ready(Ok(Response::new(String::from("called")))))
    }

    /// `tower::service_fn` without depending on tower.
    fn tower_service_fn<F, Fut>(f: F) -> ServiceFn<F>
    where
        F: FnMut(Request<()>) -> Fut,
    {
        ServiceFn(f)
    }

    #[derive(Clone)]
    struct ServiceFn<F>(F);

    impl<F, Fut> Service<Request<()>> for ServiceFn<F>
    where
        F: FnMut(Request<()>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<String>, Infallible>>,
    {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = Fut;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Fut {
            (self.0)(request)
        }
    }

    fn request(method: Method, origin: Option<&str>) -> Request<()> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri("/helloworld.Greeter/SayHello")
            .header("host", "127.0.0.1:8080");
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        if method == Method::OPTIONS {
            builder = builder
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,x-grpc-web,x-user-agent,x-request-id,x-tenant",
                );
        }
        builder.body(()).expect("valid")
    }

    async fn answer(cors: &Cors, request: Request<()>) -> Response<String> {
        let mut service = cors.layer(service());
        match service.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn same_origin_passes_and_cross_origin_is_refused_by_default() {
        let cors = Cors::default();
        let plain = answer(&cors, request(Method::POST, None)).await;
        assert_eq!(plain.body(), "called");
        let same = answer(&cors, request(Method::POST, Some("http://127.0.0.1:8080"))).await;
        assert_eq!(same.body(), "called");
        let cross = answer(&cors, request(Method::POST, Some("https://evil.example"))).await;
        assert_eq!(cross.status(), StatusCode::FORBIDDEN);
        assert_eq!(cross.body(), "");
    }

    #[tokio::test]
    async fn preflight_echoes_the_requested_headers_for_allowed_origins() {
        let cors = Cors::allow_origins(["https://app.example"]);
        let preflight = answer(&cors, request(Method::OPTIONS, Some("https://app.example"))).await;
        assert!(preflight.status().is_success());
        assert_eq!(
            preflight.body(),
            "",
            "a preflight never reaches the service"
        );
        let headers = preflight.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .expect("ascii");
        for name in ["x-grpc-web", "x-user-agent", "x-request-id", "x-tenant"] {
            assert!(allowed.contains(name), "{name} not in {allowed}");
        }
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));

        let call = answer(&cors, request(Method::POST, Some("https://app.example"))).await;
        let exposed = call.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .expect("ascii");
        assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"));
    }

    #[tokio::test]
    async fn credentials_and_custom_trailers_are_opt_in() {
        let cors = Cors::allow_origins(["https://app.example"])
            .allow_credentials(true)
            .expose_headers([HeaderName::from_static("x-request-id")]);
        let call = answer(&cors, request(Method::POST, Some("https://app.example"))).await;
        assert_eq!(
            call.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
            "true"
        );
        let exposed = call.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .expect("ascii");
        assert!(exposed.contains("x-request-id"), "{exposed}");
    }
}
