//! The HTTP upgrade request, before the connection becomes a WebSocket.
//!
//! [`Handler::on_upgrade`](crate::ws::Handler::on_upgrade) sees an [`Upgrade`] before the `101
//! Switching Protocols` response goes out, so routing, origin checks, authentication and subprotocol
//! negotiation all happen while a refusal can still be an ordinary HTTP response ([`Rejection`]) rather
//! than a dropped socket. What a guard learns (a route's captures, the authenticated user) goes into
//! [`Upgrade::extensions_mut`] and reaches the [`Session`](crate::ws::Session).

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};

use crate::ws::Extensions;

/// A validated WebSocket upgrade request, waiting for its response.
#[derive(Debug)]
pub struct Upgrade {
    request: Request<()>,
    peer_addr: Option<SocketAddr>,
    accept_key: HeaderValue,
    protocol: Option<HeaderValue>,
    response_headers: HeaderMap,
    extensions: Extensions,
}

impl Upgrade {
    /// Validates `request` as a WebSocket opening handshake (RFC 6455 section 4.2.1).
    ///
    /// This is the entry point for connections upgraded elsewhere (hyper, axum): validate, run
    /// [`Handler::on_upgrade`](crate::ws::Handler::on_upgrade), answer with [`Upgrade::response`], then
    /// hand the upgraded stream to [`serve_connection`](crate::ws::serve_connection).
    ///
    /// A request that is not a WebSocket handshake gets a [`Rejection`] explaining why: 405 for a
    /// method other than GET, 426 when the `Upgrade`/`Connection` headers or version 13 are missing,
    /// 400 for a missing or malformed `Sec-WebSocket-Key`.
    pub fn from_request(
        request: Request<()>,
        peer_addr: Option<SocketAddr>,
    ) -> Result<Self, Rejection> {
        let accept_key = validate(&request)?;
        Ok(Upgrade {
            request,
            peer_addr,
            accept_key,
            protocol: None,
            response_headers: HeaderMap::new(),
            extensions: Extensions::new(),
        })
    }

    /// The upgrade request (method, URI, headers).
    pub fn request(&self) -> &Request<()> {
        &self.request
    }

    /// The request path, e.g. `/rooms/lobby`.
    pub fn path(&self) -> &str {
        self.request.uri().path()
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.request.uri().query()
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }

    /// The peer's address, when the transport has one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order of preference.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.request
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|protocol| !protocol.is_empty())
    }

    /// Chooses the subprotocol to answer with. It must be one the client offered (RFC 6455 section
    /// 4.2.2); otherwise nothing changes and `false` is returned.
    pub fn select_protocol(&mut self, protocol: &str) -> bool {
        if !self
            .requested_protocols()
            .any(|offered| offered == protocol)
        {
            return false;
        }
        match HeaderValue::from_str(protocol) {
            Ok(value) => {
                self.protocol = Some(value);
                true
            }
            Err(_) => false,
        }
    }

    /// The chosen subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|value| value.to_str().ok())
    }

    /// Extra headers for the `101` response (cookies, a server-chosen session id, ...).
    pub fn response_headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.response_headers
    }

    /// Values that will become the session's [`Session::extensions`](crate::ws::Session::extensions).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Values that will become the session's extensions, mutably.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The `101 Switching Protocols` response accepting this upgrade.
    pub fn response(&self) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept_key.clone());
        if let Some(protocol) = &self.protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.clone());
        }
        for (name, value) in &self.response_headers {
            headers.append(name, value.clone());
        }
        response
    }

    pub(crate) fn into_parts(
        self,
    ) -> (
        Request<()>,
        Option<SocketAddr>,
        Option<HeaderValue>,
        Extensions,
    ) {
        (self.request, self.peer_addr, self.protocol, self.extensions)
    }
}

/// An HTTP response refusing an upgrade, sent instead of `101`.
#[derive(Debug, Clone)]
pub struct Rejection {
    // Boxed: a rejection is the rare path, and a small `Err` keeps every `Result` it rides in small.
    inner: Box<RejectionParts>,
}

#[derive(Debug, Clone)]
struct RejectionParts {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Rejection {
    /// A refusal with `status` and a plain-text `body`.
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let body = body.into();
        Rejection {
            inner: Box::new(RejectionParts {
                status,
                headers,
                body,
            }),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.inner.headers.append(name, value);
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// The response body.
    pub fn body(&self) -> &Bytes {
        &self.inner.body
    }

    /// Converts into an `http::Response`, for servers built on hyper or axum.
    pub fn into_response(self) -> Response<Bytes> {
        let RejectionParts {
            status,
            headers,
            body,
        } = *self.inner;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// A rejection is an axum response as it is: return it from an axum handler, or as the `Err` of
/// one (`Result<T, Rejection>`), and the client gets its status, headers and body.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum::response::IntoResponse for Rejection {
    fn into_response(self) -> axum::response::Response {
        Rejection::into_response(self).map(axum::body::Body::from)
    }
}

fn upgrade_required(body: &'static str) -> Rejection {
    Rejection::new(StatusCode::UPGRADE_REQUIRED, body)
        .with_header(header::UPGRADE, HeaderValue::from_static("websocket"))
        .with_header(header::CONNECTION, HeaderValue::from_static("Upgrade"))
        .with_header(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        )
}

/// Whether a comma-separated header contains `token`, ignoring ASCII case (RFC 7230 section 7).
pub(crate) fn header_has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Checks the opening handshake and computes `Sec-WebSocket-Accept`.
fn validate(request: &Request<()>) -> Result<HeaderValue, Rejection> {
    if request.method() != Method::GET {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "websocket upgrades use GET\n",
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET")));
    }
    if request.version() < Version::HTTP_11 {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "websocket upgrades need HTTP/1.1\n",
        ));
    }
    let headers = request.headers();
    if !header_has_token(headers, header::UPGRADE, "websocket")
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(upgrade_required(
            "this endpoint speaks websocket: send an upgrade request\n",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(upgrade_required(
            "unsupported Sec-WebSocket-Version: use 13\n",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| Rejection::new(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n"))?;
    // The key is 16 random bytes in base64: 22 significant characters and "==" (RFC 6455 4.1).
    let key_bytes = key.as_bytes();
    let well_formed = key_bytes.len() == 24
        && key_bytes.ends_with(b"==")
        && key_bytes[..22]
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'+' || *byte == b'/');
    if !well_formed {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "malformed Sec-WebSocket-Key\n",
        ));
    }
    let accept = tungstenite::handshake::derive_accept_key(key_bytes);
    HeaderValue::from_str(&accept).map_err(|_| {
        Rejection::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode accept key\n",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> http::request::Builder {
        Request::get("/ws?x=1")
            .header("host", "example.com")
            .header("upgrade", "websocket")
            .header("connection", "keep-alive, Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn rfc_sample_key_is_accepted() {
        let upgrade =
            Upgrade::from_request(request().body(()).expect("valid"), None).expect("valid");
        let response = upgrade.response();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The sample from RFC 6455 section 1.3.
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(upgrade.path(), "/ws");
        assert_eq!(upgrade.query(), Some("x=1"));
    }

    #[test]
    fn plain_http_gets_426_and_bad_key_400() {
        let plain = Request::get("/").body(()).expect("valid");
        assert_eq!(
            Upgrade::from_request(plain, None)
                .expect_err("plain")
                .status(),
            StatusCode::UPGRADE_REQUIRED
        );
        let mut bad_key = request().body(()).expect("valid");
        bad_key
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("short"));
        assert_eq!(
            Upgrade::from_request(bad_key, None)
                .expect_err("bad key")
                .status(),
            StatusCode::BAD_REQUEST
        );
        let post = Request::post("/").body(()).expect("valid");
        assert_eq!(
            Upgrade::from_request(post, None)
                .expect_err("post")
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn only_offered_protocols_can_be_selected() {
        let request = request()
            .header("sec-websocket-protocol", "chat.v2, chat.v1")
            .body(())
            .expect("valid");
        let mut upgrade = Upgrade::from_request(request, None).expect("valid");
        assert_eq!(
            upgrade.requested_protocols().collect::<Vec<_>>(),
            ["chat.v2", "chat.v1"]
        );
        assert!(!upgrade.select_protocol("mqtt"));
        assert_eq!(upgrade.protocol(), None);
        assert!(upgrade.select_protocol("chat.v1"));
        assert_eq!(
            upgrade.response().headers()[header::SEC_WEBSOCKET_PROTOCOL],
            "chat.v1"
        );
    }
}
