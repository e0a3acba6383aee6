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
//! tonic-web 0.14 translates gRPC-Web but leaves CORS to the server, so the policy is here, as a
//! value with a safe default rather than a hard-coded rule: **same origin only**, decided by the
//! same [`OriginPolicy`] (RFC 6454 comparison, default ports filled in) as the WebSocket upgrade's. A page served by
//! the same one-port server (the usual case) needs no CORS at all; a cross-origin page gets `403`
//! unless its origin is allowed. An allowed origin gets the preflight answer browsers require
//! (`Access-Control-Allow-Headers` for `content-type`, `x-grpc-web`, `x-user-agent`,
//! `grpc-timeout` and `authorization`), and the gRPC trailers it must read
//! (`grpc-status`, `grpc-message`) are exposed to it.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::assets::plain;
use crate::origin::{OriginCheck, OriginPolicy};

/// Request headers a gRPC-Web client sends, allowed in preflights.
const ALLOW_HEADERS: &str =
    "content-type, x-grpc-web, x-user-agent, grpc-timeout, grpc-accept-encoding, authorization";
/// Response headers a gRPC-Web client must be able to read.
const EXPOSE_HEADERS: &str = "grpc-status, grpc-message, grpc-status-details-bin, grpc-encoding";

/// The CORS policy of the gRPC-Web endpoint. Default: same origin only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    origins: OriginPolicy,
    max_age: Duration,
}

impl Default for Cors {
    fn default() -> Self {
        Cors::same_origin()
    }
}

/// What the policy says about one request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Not a cross-origin request: serve it as is.
    Pass,
    /// An allowed cross-origin request: serve it and add these headers to the response.
    Allow(HeaderMap),
    /// Answer with this response instead (a preflight, or a refusal).
    Respond(Response<Bytes>),
}

impl Cors {
    /// Only pages of the same origin (scheme, host and port of this server) may call; this is
    /// the default.
    pub fn same_origin() -> Self {
        Cors {
            origins: OriginPolicy::same_origin(),
            max_age: Duration::from_secs(3600),
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

    /// How long browsers may cache a preflight answer. Default one hour.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Decides about a gRPC-Web request or its preflight.
    pub(crate) fn check<B>(&self, request: &Request<B>) -> Verdict {
        let Some(origin) = request.headers().get(header::ORIGIN) else {
            return Verdict::Pass;
        };
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        match self.origins.check(request) {
            OriginCheck::NoOrigin => return Verdict::Pass,
            OriginCheck::SameOrigin if !preflight => return Verdict::Pass,
            OriginCheck::SameOrigin | OriginCheck::Allowed => {}
            OriginCheck::Refused => {
                tracing::debug!(?origin, "cross-origin grpc-web request refused");
                return Verdict::Respond(plain(
                    StatusCode::FORBIDDEN,
                    "origin not allowed to call this server\n",
                ));
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
        if preflight {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(self.max_age.as_secs()),
            );
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NO_CONTENT;
            *response.headers_mut() = headers;
            return Verdict::Respond(response);
        }
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        Verdict::Allow(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, origin: Option<&str>) -> Request<()> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri("/helloworld.Greeter/SayHello")
            .header("host", "127.0.0.1:8080");
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        if method == Method::OPTIONS {
            builder = builder.header("access-control-request-method", "POST");
        }
        builder.body(()).expect("valid")
    }

    #[test]
    fn same_origin_passes_and_cross_origin_is_refused_by_default() {
        let cors = Cors::default();
        assert!(matches!(
            cors.check(&request(Method::POST, None)),
            Verdict::Pass
        ));
        assert!(matches!(
            cors.check(&request(Method::POST, Some("http://127.0.0.1:8080"))),
            Verdict::Pass
        ));
        // RFC 6454: the default port is filled in before comparing.
        let mut default_port = request(Method::POST, Some("https://chat.example"));
        default_port
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static("chat.example:443"));
        assert!(matches!(cors.check(&default_port), Verdict::Pass));
        match cors.check(&request(Method::POST, Some("https://evil.example"))) {
            Verdict::Respond(response) => assert_eq!(response.status(), StatusCode::FORBIDDEN),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn allowed_origins_get_preflight_and_exposed_trailers() {
        let cors = Cors::allow_origins(["https://app.example"]);
        match cors.check(&request(Method::OPTIONS, Some("https://app.example"))) {
            Verdict::Respond(response) => {
                assert_eq!(response.status(), StatusCode::NO_CONTENT);
                assert_eq!(
                    response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
                    "https://app.example"
                );
                assert!(
                    response.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
                        .to_str()
                        .expect("ascii")
                        .contains("x-grpc-web")
                );
            }
            other => panic!("expected a preflight answer, got {other:?}"),
        }
        match cors.check(&request(Method::POST, Some("https://app.example"))) {
            Verdict::Allow(headers) => assert!(
                headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
                    .to_str()
                    .expect("ascii")
                    .contains("grpc-status")
            ),
            other => panic!("expected an allowed request, got {other:?}"),
        }
        assert!(matches!(
            Cors::allow_any_origin().check(&request(Method::POST, Some("https://x.example"))),
            Verdict::Allow(_)
        ));
    }
}
