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

use crate::origin::request_authority;
use crate::ws::{Config, DeflateConfig, Extensions, PerMessageDeflate};

/// A validated WebSocket upgrade request, waiting for its response.
#[derive(Debug)]
pub struct Upgrade {
    request: Request<()>,
    peer_addr: Option<SocketAddr>,
    /// `Sec-WebSocket-Accept` for an HTTP/1.1 upgrade; `None` for an RFC 8441 extended CONNECT,
    /// which has no key (RFC 8441 section 5).
    accept_key: Option<HeaderValue>,
    protocol: Option<HeaderValue>,
    response_headers: HeaderMap,
    extensions: Extensions,
    /// permessage-deflate as agreed; see [`Upgrade::negotiate_compression`].
    compression: Option<PerMessageDeflate>,
}

impl Upgrade {
    /// Validates `request` as a WebSocket opening handshake (RFC 6455 section 4.2.1).
    ///
    /// This is the entry point for connections upgraded elsewhere (hyper, axum): validate, run
    /// [`Handler::on_upgrade`](crate::ws::Handler::on_upgrade), answer with [`Upgrade::response`], then
    /// hand the upgraded stream to [`serve_connection`](crate::ws::serve_connection).
    ///
    /// Every rule of RFC 9112 section 3.2 and RFC 6455 section 4.2.1 is checked; a request
    /// breaking one gets a [`Rejection`] with a plain-text body saying which:
    ///
    /// | request | status |
    /// |---|---|
    /// | HTTP/1.0 (RFC 6455 4.2.1 item 1) | 400 |
    /// | HTTP/1.1 without `Host`, with two `Host` lines, or a `Host` that is not `uri-host [":" port]` (RFC 9112 3.2); an absolute-form target with an invalid authority | 400 |
    /// | a target that is neither a path nor an absolute `http(s)`/`ws(s)` URI | 400 |
    /// | a method other than GET | 405 with `Allow: GET` |
    /// | `Upgrade` without `websocket` or `Connection` without `Upgrade` | 426 with `Upgrade: websocket` |
    /// | two `Sec-WebSocket-Version` lines (RFC 6455 11.3.5) | 400 |
    /// | `Sec-WebSocket-Version` missing or not 13 (RFC 6455 4.2.2 item 4) | 426 with `Sec-WebSocket-Version: 13` |
    /// | `Sec-WebSocket-Key` missing, repeated (11.3.1) or not base64 of 16 bytes | 400 |
    ///
    /// HTTP/2 requests are WebSockets over HTTP/2 (RFC 8441), checked by their own rules: see
    /// [`Upgrade::http_version`]. The origin check is separate ([`Config::check_origin`]): the
    /// crate's servers run both.
    pub fn from_request(
        request: Request<()>,
        peer_addr: Option<SocketAddr>,
    ) -> Result<Self, Rejection> {
        let accept_key = if request.version() >= Version::HTTP_2 {
            validate_extended_connect(&request)?;
            None
        } else {
            Some(validate_handshake(&request)?)
        };
        Ok(Upgrade {
            request,
            peer_addr,
            accept_key,
            protocol: None,
            response_headers: HeaderMap::new(),
            extensions: Extensions::new(),
            compression: None,
        })
    }

    /// What every upgrade path of the crate runs before `on_upgrade`: [`Upgrade::from_request`],
    /// then [`Config::check_origin`].
    pub(crate) fn validate(
        request: Request<()>,
        peer_addr: Option<SocketAddr>,
        config: &Config,
    ) -> Result<Self, Rejection> {
        let mut upgrade = Upgrade::from_request(request, peer_addr)?;
        config.check_origin(&upgrade)?;
        upgrade.negotiate_compression(&config.deflate);
        Ok(upgrade)
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

    /// Which HTTP the WebSocket runs over: [`Version::HTTP_11`] for an RFC 6455 upgrade (`GET`
    /// with `Upgrade: websocket`, answered `101`), [`Version::HTTP_2`] for an RFC 8441 extended
    /// CONNECT (`:method CONNECT`, `:protocol websocket`, answered `200`; the WebSocket is one
    /// HTTP/2 stream among the connection's others).
    ///
    /// An HTTP/2 request is checked by RFC 8441 section 5 instead of the table above:
    ///
    /// | request | status |
    /// |---|---|
    /// | `:authority` missing or invalid, or a `Host` naming another authority (RFC 9113 8.3.1) | 400 |
    /// | a method other than CONNECT | 405 with `Allow: CONNECT` |
    /// | no `:protocol`, or one other than `websocket` (RFC 9220 section 3 for unknown protocols) | 501 |
    /// | `Sec-WebSocket-Version` missing, repeated or not 13 (RFC 6455 4.2.2 item 4) | 400 with `Sec-WebSocket-Version: 13` (HTTP/2 has no `426`/`Upgrade`) |
    ///
    /// `Sec-WebSocket-Key` is not used (RFC 8441 section 5) and ignored when sent. The
    /// `:protocol` pseudo-header arrives as hyper's `ext::Protocol` request extension, so
    /// extended CONNECT requests are recognised with the `grpc` feature (which brings hyper);
    /// without it every HTTP/2 request gets `501`.
    pub fn http_version(&self) -> Version {
        self.request.version()
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

    /// The response accepting this upgrade: `101 Switching Protocols` with
    /// `Sec-WebSocket-Accept` for HTTP/1.1, `200 OK` for HTTP/2 (RFC 8441 section 5), with the
    /// chosen subprotocol, the agreed permessage-deflate parameters and the extra [`response_headers_mut`](Self::response_headers_mut).
    pub fn response(&self) -> Response<()> {
        let Some(accept_key) = &self.accept_key else {
            return self.extended_connect_response();
        };
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept_key.clone());
        self.agreed_headers(headers);
        response
    }

    /// What both answers carry: the chosen subprotocol, the agreed permessage-deflate parameters
    /// (RFC 7692 section 5) and the extra [`response_headers_mut`](Self::response_headers_mut).
    fn agreed_headers(&self, headers: &mut HeaderMap) {
        if let Some(protocol) = &self.protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.clone());
        }
        if let Some(compression) = &self.compression
            && let Ok(value) = HeaderValue::from_str(&compression.to_string())
        {
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
        for (name, value) in &self.response_headers {
            headers.append(name, value.clone());
        }
    }

    /// RFC 8441 section 5: `200` accepts an extended CONNECT; no `Upgrade`, `Connection` (both
    /// forbidden on HTTP/2, RFC 9113 section 8.2.2) or `Sec-WebSocket-Accept`.
    fn extended_connect_response(&self) -> Response<()> {
        let mut response = Response::new(());
        self.agreed_headers(response.headers_mut());
        response
    }

    /// Answers the client's permessage-deflate offers (RFC 7692 section 5) per `config`: the first
    /// offer it can honour is accepted, and [`response`](Self::response) names it in
    /// `Sec-WebSocket-Extensions`; with none acceptable (or `config` disabled) nothing is
    /// answered and messages go uncompressed. The crate's servers call this before `on_upgrade`;
    /// call it yourself (with the [`Config::deflate`] you pass to
    /// [`serve_connection`](crate::ws::serve_connection)) when you upgrade with
    /// [`Upgrade::from_request`]. Returns what was agreed.
    pub fn negotiate_compression(&mut self, config: &DeflateConfig) -> Option<PerMessageDeflate> {
        self.compression = crate::ws::deflate::negotiate(
            self.request
                .headers()
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .map(HeaderValue::as_bytes),
            config,
        );
        self.compression
    }

    /// The permessage-deflate parameters the `101` will carry, if any.
    pub fn compression(&self) -> Option<PerMessageDeflate> {
        self.compression
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

    /// Converts into an `http::Response` with the body as `Bytes`, for servers built on hyper
    /// (named as tonic's `Status::into_http`; with the `axum` feature, axum's `IntoResponse` is
    /// implemented too).
    pub fn into_http(self) -> Response<Bytes> {
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
        self.into_http().map(axum::body::Body::from)
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

/// Checks the opening handshake, rule by rule, and computes `Sec-WebSocket-Accept`.
///
/// The order decides which status a request breaking several rules gets: first what makes it a
/// valid HTTP/1.1 request at all (version, `Host`, target: 400), then the method (405), then
/// whether it asks for a WebSocket (426), then the WebSocket headers.
fn validate_handshake(request: &Request<()>) -> Result<HeaderValue, Rejection> {
    // RFC 6455 section 4.2.1 item 1: "an HTTP/1.1 or higher GET request". An HTTP/1.0 request
    // is a malformed handshake, so 400 (the same section's closing paragraph); 426 would ask the
    // client to switch protocols, which HTTP/1.0 cannot express (it has no `Upgrade`).
    if request.version() < Version::HTTP_11 {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "websocket upgrades need HTTP/1.1\n",
        ));
    }
    // RFC 9112 section 3.2 (and RFC 6455 section 4.2.1 item 2): Host present, once, valid. On
    // HTTP/2 (RFC 8441) the authority is `:authority` instead.
    request_authority(request)?;
    // RFC 6455 section 4.2.1 item 1: the target is a resource name (origin form) or an absolute
    // http, https, ws or wss URI.
    let uri = request.uri();
    let target_ok = uri.path().starts_with('/')
        && uri
            .scheme_str()
            .is_none_or(|scheme| matches!(scheme, "http" | "https" | "ws" | "wss"));
    if !target_ok {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "invalid request target for a websocket upgrade\n",
        ));
    }
    if request.method() != Method::GET {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "websocket upgrades use GET\n",
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET")));
    }
    // RFC 6455 section 4.2.1 items 3 and 4, tokens compared without ASCII case.
    let headers = request.headers();
    if !header_has_token(headers, header::UPGRADE, "websocket")
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(upgrade_required(
            "this endpoint speaks websocket: send an upgrade request\n",
        ));
    }
    // RFC 6455 section 11.3.5: the version header appears at most once; section 4.2.2 item 4:
    // another version gets 426 and the versions this server speaks.
    let version = single(headers, header::SEC_WEBSOCKET_VERSION)
        .map_err(|()| bad_request("more than one Sec-WebSocket-Version header\n"))?;
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(upgrade_required(
            "unsupported Sec-WebSocket-Version: use 13\n",
        ));
    }
    // RFC 6455 section 11.3.1: the key appears at most once; section 4.2.1 item 5: it is the
    // base64 of 16 bytes.
    let key = single(headers, header::SEC_WEBSOCKET_KEY)
        .map_err(|()| bad_request("more than one Sec-WebSocket-Key header\n"))?
        .ok_or_else(|| bad_request("missing Sec-WebSocket-Key\n"))?;
    if !is_base64_of_16_bytes(key.as_bytes()) {
        return Err(bad_request("malformed Sec-WebSocket-Key\n"));
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).map_err(|_| {
        Rejection::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode accept key\n",
        )
    })
}

/// Whether `request` is an RFC 8441 extended CONNECT: `:method CONNECT` with a `:protocol`
/// (any; [`validate_extended_connect`] answers `501` to protocols other than `websocket`).
#[cfg(feature = "grpc")]
pub(crate) fn is_extended_connect<B>(request: &Request<B>) -> bool {
    request.method() == Method::CONNECT
        && request.extensions().get::<hyper::ext::Protocol>().is_some()
}

/// The `:protocol` of an extended CONNECT, as hyper (and h2 under it) hands it over.
#[cfg(feature = "grpc")]
fn connect_protocol(request: &Request<()>) -> Option<&str> {
    request
        .extensions()
        .get::<hyper::ext::Protocol>()
        .map(hyper::ext::Protocol::as_str)
}

/// Without hyper no server of the crate speaks HTTP/2, so no extended CONNECT can arrive.
#[cfg(not(feature = "grpc"))]
fn connect_protocol(_request: &Request<()>) -> Option<&str> {
    None
}

/// Checks an HTTP/2 WebSocket request (RFC 8441 sections 4 and 5); the table is on
/// [`Upgrade::http_version`].
fn validate_extended_connect(request: &Request<()>) -> Result<(), Rejection> {
    // RFC 8441 section 4: `:scheme`, `:path` and `:authority` are all present; RFC 9113 8.3.1
    // for a `Host` that disagrees.
    if request_authority(request)?.is_none() || !request.uri().path().starts_with('/') {
        return Err(bad_request(
            "an extended CONNECT needs :authority and :path\n",
        ));
    }
    if request.method() != Method::CONNECT {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "websockets over http/2 use an extended CONNECT (RFC 8441)\n",
        )
        .with_header(header::ALLOW, HeaderValue::from_static("CONNECT")));
    }
    // RFC 9220 section 3 (the HTTP/3 twin of RFC 8441, same semantics): an unknown `:protocol`
    // SHOULD get 501.
    if connect_protocol(request) != Some("websocket") {
        return Err(Rejection::new(
            StatusCode::NOT_IMPLEMENTED,
            "only the websocket protocol is served by extended CONNECT here\n",
        ));
    }
    // RFC 8441 section 5 keeps `Sec-WebSocket-Version`; RFC 6455 section 4.2.2 item 4 asks for
    // "an appropriate HTTP error code (such as 426)" and the versions served. 426 names an
    // `Upgrade` header, which HTTP/2 forbids, so 400.
    let version = single(request.headers(), header::SEC_WEBSOCKET_VERSION)
        .ok()
        .flatten();
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(bad_request(
            "missing, repeated or unsupported Sec-WebSocket-Version: use 13\n",
        )
        .with_header(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        ));
    }
    Ok(())
}

fn bad_request(body: &'static str) -> Rejection {
    Rejection::new(StatusCode::BAD_REQUEST, body)
}

/// The one value of a header that may appear at most once; `Err` when it appears more often.
fn single(headers: &HeaderMap, name: HeaderName) -> Result<Option<&HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (_, Some(_)) => Err(()),
        (value, None) => Ok(value),
    }
}

/// Whether `key` is the canonical base64 (RFC 4648 section 4, padded) of exactly 16 bytes: 21
/// characters of 6 bits, one holding the last 2 bits (its low 4 bits zero, so one of `A`, `Q`,
/// `g`, `w`), and `==`.
fn is_base64_of_16_bytes(key: &[u8]) -> bool {
    let is_base64 = |byte: &u8| byte.is_ascii_alphanumeric() || *byte == b'+' || *byte == b'/';
    key.len() == 24
        && key[..21].iter().all(is_base64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
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

    /// The status `request` is refused with, or `None` when it is accepted.
    fn refusal(request: http::request::Builder) -> Option<Rejection> {
        Upgrade::from_request(request.body(()).expect("valid"), None).err()
    }

    fn without(name: &str) -> http::request::Builder {
        let mut builder = request();
        builder.headers_mut().expect("valid").remove(name);
        builder
    }

    #[test]
    fn every_rule_has_its_status() {
        let status = |request| refusal(request).map(|rejection| rejection.status());
        let bad = Some(StatusCode::BAD_REQUEST);
        assert_eq!(status(request()), None);
        // RFC 9112 section 3.2: Host.
        assert_eq!(status(without("host")), bad);
        assert_eq!(status(request().header("host", "example.com")), bad);
        assert_eq!(status(without("host").header("host", "exa mple.com")), bad);
        assert_eq!(status(without("host").header("host", "u@example.com")), bad);
        // Absolute form: the target's authority must be valid too, Host still required.
        assert_eq!(status(request().uri("ws://example.com/ws")), None);
        assert_eq!(status(without("host").uri("ws://example.com/ws")), bad);
        assert_eq!(status(request().uri("ftp://example.com/ws")), bad);
        assert_eq!(status(request().uri("*")), bad);
        // HTTP version.
        assert_eq!(status(request().version(Version::HTTP_10)), bad);
        // Method.
        let post = refusal(request().method(Method::POST)).expect("refused");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::ALLOW], "GET");
        // Upgrade and Connection.
        for builder in [
            without("upgrade"),
            without("connection"),
            without("upgrade").header("upgrade", "h2c"),
            without("connection").header("connection", "keep-alive"),
        ] {
            let refused = refusal(builder).expect("refused");
            assert_eq!(refused.status(), StatusCode::UPGRADE_REQUIRED);
            assert_eq!(refused.headers()[header::UPGRADE], "websocket");
        }
        // Sec-WebSocket-Version.
        for builder in [
            without("sec-websocket-version"),
            without("sec-websocket-version").header("sec-websocket-version", "8"),
        ] {
            let refused = refusal(builder).expect("refused");
            assert_eq!(refused.status(), StatusCode::UPGRADE_REQUIRED);
            assert_eq!(refused.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        }
        assert_eq!(status(request().header("sec-websocket-version", "13")), bad);
        // Sec-WebSocket-Key.
        assert_eq!(status(without("sec-websocket-key")), bad);
        assert_eq!(
            status(request().header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")),
            bad
        );
        for key in [
            "short",
            "dGhlIHNhbXBsZSBub25jZR==", // 16 bytes with stray bits: not canonical
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ.=",
            "dGhlIHNhbXBsZSBub25jZSBhbmQgbW9yZQ==", // 26 bytes
        ] {
            let builder = without("sec-websocket-key").header("sec-websocket-key", key);
            assert_eq!(status(builder), bad, "{key}");
        }
    }

    /// An RFC 8441 extended CONNECT as hyper hands it over (with the `:protocol` extension).
    #[cfg(feature = "grpc")]
    fn extended_connect(protocol: Option<&'static str>) -> http::request::Builder {
        let builder = Request::connect("https://example.com/ws?room=1")
            .version(Version::HTTP_2)
            .header("sec-websocket-version", "13");
        match protocol {
            Some(protocol) => builder.extension(hyper::ext::Protocol::from_static(protocol)),
            None => builder,
        }
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn extended_connect_is_accepted_with_200() {
        // No Host line and no key: the authority is `:authority`, and RFC 8441 drops the key.
        let request = extended_connect(Some("websocket"))
            .header("sec-websocket-protocol", "chat")
            .body(())
            .expect("valid");
        assert!(is_extended_connect(&request));
        let mut upgrade = Upgrade::from_request(request, None).expect("valid");
        assert_eq!(upgrade.http_version(), Version::HTTP_2);
        assert_eq!(upgrade.path(), "/ws");
        assert!(upgrade.select_protocol("chat"));
        let response = upgrade.response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_PROTOCOL], "chat");
        for forbidden in [
            header::UPGRADE,
            header::CONNECTION,
            header::SEC_WEBSOCKET_ACCEPT,
        ] {
            assert!(!response.headers().contains_key(&forbidden), "{forbidden}");
        }
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn extended_connect_rules_have_their_status() {
        let status = |request| refusal(request).map(|rejection| rejection.status());
        assert_eq!(status(extended_connect(Some("websocket"))), None);
        assert_eq!(
            status(extended_connect(Some("webtransport"))),
            Some(StatusCode::NOT_IMPLEMENTED)
        );
        assert_eq!(
            status(extended_connect(None)),
            Some(StatusCode::NOT_IMPLEMENTED)
        );
        let get =
            refusal(extended_connect(Some("websocket")).method(Method::GET)).expect("refused");
        assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(get.headers()[header::ALLOW], "CONNECT");
        let mut no_version = extended_connect(Some("websocket"));
        no_version.headers_mut().expect("valid").clear();
        let refused = refusal(no_version).expect("refused");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(refused.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(
            status(extended_connect(Some("websocket")).header("sec-websocket-version", "8")),
            Some(StatusCode::BAD_REQUEST)
        );
        // RFC 9113 section 8.3.1: Host must agree with :authority.
        assert_eq!(
            status(extended_connect(Some("websocket")).header("host", "other.example")),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[cfg(not(feature = "grpc"))]
    #[test]
    fn http2_without_hyper_is_not_implemented() {
        let request = Request::connect("https://example.com/ws")
            .version(Version::HTTP_2)
            .header("sec-websocket-version", "13");
        assert_eq!(
            refusal(request).map(|rejection| rejection.status()),
            Some(StatusCode::NOT_IMPLEMENTED)
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
