//! Web origins (RFC 6454) and the authority a request was sent to (RFC 9112 section 3.2): the one
//! comparison behind every browser check in the crate.
//!
//! ```
//! use wsgrpc::origin::{Origin, OriginPolicy};
//!
//! // The scheme's default port is filled in (RFC 6454 section 4), hosts compare without ASCII case.
//! let spelled_out: Origin = "https://Chat.Example:443".parse().expect("an origin");
//! let usual: Origin = "https://chat.example".parse().expect("an origin");
//! assert_eq!(spelled_out, usual);
//! assert_eq!(usual.port(), Some(443));
//! // `null` (sandboxed frames, `file:` pages) is not an origin anything can match.
//! assert!("null".parse::<Origin>().is_err());
//!
//! // Same origin only, plus one front end served elsewhere.
//! let policy = OriginPolicy::allow(["https://app.example"]);
//! # let _ = policy;
//! ```
//!
//! Browsers attach cookies and HTTP auth to requests from any page, and two kinds of request the
//! crate serves are not protected by the browser: WebSocket upgrades (not covered by CORS at all)
//! and gRPC-Web calls (CORS is the server's job). Both checks, the WebSocket upgrade's
//! ([`ws::Config::origin_policy`](crate::ws::Config::origin_policy)) and gRPC-Web's
//! ([`serve::Cors`](crate::serve::Cors)), go through [`OriginPolicy`], so they cannot disagree.
//!
//! **Same origin** means: the `Origin` header's (scheme, host, port) names the authority the
//! request was sent to. That authority is the `Host` header on HTTP/1.1 (or the request target's,
//! when it is in absolute form: RFC 9112 section 3.2.2) and `:authority` on HTTP/2. `Host` carries
//! no scheme, so a `Host` without a port stands for the default port **of the origin's scheme**
//! (`Host: chat.example` matches `https://chat.example` and `http://chat.example`). The scheme of
//! the connection itself is deliberately not consulted: behind a TLS-terminating proxy a page
//! served as `https://` reaches this server over plain TCP, and comparing the connection's scheme
//! would refuse every legitimate page. What is compared is what the browser controls and a
//! cross-site page cannot forge: the host and port.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;
use std::sync::Arc;

use http::header::{HOST, ORIGIN};
use http::{HeaderValue, Request, StatusCode, Version};

use crate::ws::Rejection;

/// A web origin: the (scheme, host, port) triple of RFC 6454 section 4.
///
/// Parsed from its serialization (`scheme "://" host [ ":" port ]`, RFC 6454 section 6.2) as the
/// `Origin` header carries it. The scheme and host are kept in ASCII lower case; the port is the
/// explicit one or the scheme's default (80 for `http`/`ws`, 443 for `https`/`wss`; `None` for
/// other schemes without a port). Two origins are the same exactly when the three parts are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Box<str>,
    host: Box<str>,
    port: Option<u16>,
}

/// The error for a string that is not a serialized origin (including `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin {
    value: String,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an origin (scheme://host[:port])",
            self.value
        )
    }
}

impl std::error::Error for InvalidOrigin {}

impl Origin {
    /// The scheme, in lower case (`https`).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, in lower case; an IPv6 address in brackets, in its canonical text form.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: the explicit one, else the scheme's default (RFC 6454 section 4), else `None`.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether a request to `authority` comes from this origin's own site: same host, and the
    /// same port once a port-less authority is given this origin's default port.
    pub(crate) fn is_served_by(&self, authority: &Authority) -> bool {
        self.host == authority.host
            && self.port == authority.port.or_else(|| default_port(&self.scheme))
    }
}

impl FromStr for Origin {
    type Err = InvalidOrigin;

    fn from_str(value: &str) -> Result<Self, InvalidOrigin> {
        let invalid = || InvalidOrigin {
            value: value.to_owned(),
        };
        let (scheme, rest) = value.split_once("://").ok_or_else(invalid)?;
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 section 3.1)
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(invalid());
        }
        let scheme = scheme.to_ascii_lowercase();
        let authority = Authority::parse(rest).ok_or_else(invalid)?;
        let port = authority.port.or_else(|| default_port(&scheme));
        Ok(Origin {
            scheme: scheme.into(),
            host: authority.host,
            port,
        })
    }
}

impl fmt::Display for Origin {
    /// The serialization of RFC 6454 section 6.2: the port only when it is not the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) if Some(port) != default_port(&self.scheme) => write!(f, ":{port}"),
            _ => Ok(()),
        }
    }
}

/// The default port of a scheme that has one a browser uses (RFC 6454 section 4, RFC 6455
/// section 3).
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986 section 3.2.2), as `Host`, an
/// absolute-form target or `:authority` carry it. The host is in lower case; the port is `None`
/// when absent or empty (RFC 3986 section 3.2.3: an empty port means the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority {
    host: Box<str>,
    port: Option<u16>,
}

impl Authority {
    /// Parses `uri-host [":" port]`; `None` for anything else, including userinfo (`user@`,
    /// which RFC 9110 section 4.2.4 says to treat as an error) and an empty host.
    pub(crate) fn parse(value: &str) -> Option<Authority> {
        let (host, port) = if let Some(literal) = value.strip_prefix('[') {
            // IP-literal: only IPv6 (IPvFuture has no users); compared in canonical form, so
            // `[0:0::1]` and `[::1]` are the same host.
            let (address, rest) = literal.split_once(']')?;
            let address: Ipv6Addr = address.parse().ok()?;
            let port = match rest {
                "" => "",
                rest => rest.strip_prefix(':')?,
            };
            (format!("[{address}]"), port)
        } else {
            let (host, port) = value.split_once(':').unwrap_or((value, ""));
            if host.is_empty() || !is_reg_name(host) {
                return None;
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = if port.is_empty() {
            None
        } else if port.bytes().all(|b| b.is_ascii_digit()) {
            Some(port.parse::<u16>().ok()?)
        } else {
            return None;
        };
        Some(Authority {
            host: host.into(),
            port,
        })
    }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 section 3.2.2); IPv4
/// addresses are reg-names too.
fn is_reg_name(host: &str) -> bool {
    let bytes = host.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3);
                if !hex.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() => {}
            b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// The authority `request` was sent to, checked as RFC 9112 section 3.2 requires.
///
/// On HTTP/1.x: a request with more than one `Host` line, or a `Host` that is not `uri-host
/// [":" port]`, gets `400`, and so does an HTTP/1.1 request without `Host` (HTTP/1.0 did not
/// require it). When the target is in absolute form, its authority wins over `Host` (RFC 9112
/// section 3.2.2), though `Host` must still be there and valid. On HTTP/2 and later the authority
/// is `:authority` (the URI's), else a `Host` line; having neither is not an error there, having
/// both with different values is (RFC 9113 section 8.3.1), and so are two `Host` lines. An
/// empty `Host` is refused too: nothing this crate serves is reached without an authority.
pub(crate) fn request_authority<B>(request: &Request<B>) -> Result<Option<Authority>, Rejection> {
    let target = match request.uri().authority() {
        Some(authority) => Some(
            Authority::parse(authority.as_str())
                .ok_or_else(|| bad_request("invalid authority in the request target\n"))?,
        ),
        None => None,
    };
    let mut hosts = request.headers().get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == Version::HTTP_11 => {
            return Err(bad_request("missing Host header\n"));
        }
        (None, _) => None,
        (Some(_), Some(_)) => return Err(bad_request("more than one Host header\n")),
        (Some(host), None) => Some(
            host.to_str()
                .ok()
                .and_then(Authority::parse)
                .ok_or_else(|| bad_request("invalid Host header\n"))?,
        ),
    };
    // RFC 9113 section 8.3.1: on HTTP/2 a `Host` naming another authority than `:authority`
    // makes the request malformed. (On HTTP/1.1 the absolute-form target simply wins.)
    let conflicting = matches!((&target, &host), (Some(target), Some(host)) if target != host);
    if request.version() >= Version::HTTP_2 && conflicting {
        return Err(bad_request("Host differs from :authority\n"));
    }
    Ok(target.or(host))
}

fn bad_request(body: &'static str) -> Rejection {
    Rejection::new(StatusCode::BAD_REQUEST, body)
}

/// Which pages may send requests with the user's cookies: same origin only (the default), same
/// origin plus an allow-list, or any.
///
/// A request without an `Origin` header passes every policy: it does not come from a web page
/// (browsers send `Origin` on every WebSocket upgrade and every cross-origin call), and
/// non-browser clients have no ambient credentials to abuse. `null` and anything that is not a
/// serialized origin match neither the same origin nor the allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Allowed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Allowed {
    #[default]
    SameOrigin,
    List(Arc<[Origin]>),
    Any,
}

/// What an [`OriginPolicy`] says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginCheck {
    /// No `Origin` header: not from a web page.
    NoOrigin,
    /// From a page of the origin the request was sent to.
    SameOrigin,
    /// From another origin the policy allows.
    Allowed,
    /// From another origin (or `null`, or garbage) the policy does not allow.
    Refused,
}

impl OriginPolicy {
    /// Same origin only: the default.
    pub fn same_origin() -> Self {
        OriginPolicy::default()
    }

    /// The same origin, and pages of these origins, each written as browsers send it
    /// (`https://app.example`, `http://localhost:3000`; a trailing `/` is ignored). Compared as
    /// (scheme, host, port) tuples, so `https://app.example:443` is the same entry.
    ///
    /// # Panics
    ///
    /// If an entry is not an origin (`scheme://host[:port]`), naming it: a configuration error
    /// is better found at startup than as a refused page.
    pub fn allow<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list = origins
            .into_iter()
            .map(|origin| {
                let origin = origin.as_ref();
                origin
                    .trim_end_matches('/')
                    .parse::<Origin>()
                    .unwrap_or_else(|error| panic!("allow-list entry: {error}"))
            })
            .collect();
        OriginPolicy {
            allowed: Allowed::List(list),
        }
    }

    /// Any page on the web, `null` included. An explicit opt-out, for endpoints that rely on no
    /// ambient credentials (cookies, HTTP auth, client certificates) or public APIs.
    pub fn any() -> Self {
        OriginPolicy {
            allowed: Allowed::Any,
        }
    }

    /// Whether this policy lets every origin in.
    pub fn allows_any(&self) -> bool {
        self.allowed == Allowed::Any
    }

    /// Applies the policy to `request`'s `Origin`, against the authority it was sent to (see the
    /// [module docs](self) for the rule and why `Host` without a port means the origin's default).
    pub(crate) fn check<B>(&self, request: &Request<B>) -> OriginCheck {
        let Some(value) = request.headers().get(ORIGIN) else {
            return OriginCheck::NoOrigin;
        };
        let origin = parse_header(value);
        let same = origin.as_ref().is_some_and(|origin| {
            request_authority(request)
                .ok()
                .flatten()
                .is_some_and(|authority| origin.is_served_by(&authority))
        });
        if same {
            return OriginCheck::SameOrigin;
        }
        let allowed = match &self.allowed {
            Allowed::SameOrigin => false,
            Allowed::Any => true,
            Allowed::List(list) => origin.is_some_and(|origin| list.contains(&origin)),
        };
        if allowed {
            OriginCheck::Allowed
        } else {
            OriginCheck::Refused
        }
    }
}

/// The `Origin` header as one origin; `None` for `null`, a list, or anything unparsable.
fn parse_header(value: &HeaderValue) -> Option<Origin> {
    value.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(value: &str) -> Origin {
        value.parse().expect(value)
    }

    fn authority(value: &str) -> Authority {
        Authority::parse(value).expect(value)
    }

    #[test]
    fn default_ports_are_filled_in_and_case_ignored() {
        assert_eq!(
            origin("https://Chat.Example"),
            origin("https://chat.example:443")
        );
        assert_eq!(origin("HTTP://a.example:80"), origin("http://a.example"));
        assert_eq!(origin("wss://a.example").port(), Some(443));
        assert_eq!(origin("ws://a.example").port(), Some(80));
        assert_eq!(origin("chrome-extension://abc").port(), None);
        assert_ne!(origin("http://a.example"), origin("https://a.example"));
        assert_ne!(origin("http://a.example"), origin("http://a.example:8080"));
        assert_eq!(origin("http://[0:0::1]:8080"), origin("http://[::1]:8080"));
        assert_eq!(
            origin("https://a.example:443").to_string(),
            "https://a.example"
        );
        assert_eq!(
            origin("http://A.example:8080").to_string(),
            "http://a.example:8080"
        );
    }

    #[test]
    fn null_and_garbage_are_not_origins() {
        for value in [
            "null",
            "",
            "a.example",
            "https://",
            "https://user@a.example",
            "https://a.example/path",
            "https://a.example:99999",
            "https://a.example:8o",
            "https://a b.example",
            "https://a.example https://b.example",
            "1https://a.example",
            "https://[not-ipv6]",
            "https://a.example:80:80",
        ] {
            assert!(value.parse::<Origin>().is_err(), "{value:?} parsed");
        }
    }

    #[test]
    fn host_without_port_means_the_origins_default() {
        // The case from issue 12: the default port spelled out in Host.
        assert!(origin("https://chat.example").is_served_by(&authority("chat.example:443")));
        assert!(origin("https://chat.example").is_served_by(&authority("CHAT.example")));
        assert!(origin("http://chat.example").is_served_by(&authority("chat.example")));
        assert!(origin("http://chat.example").is_served_by(&authority("chat.example:")));
        assert!(origin("http://127.0.0.1:8080").is_served_by(&authority("127.0.0.1:8080")));
        assert!(!origin("http://chat.example").is_served_by(&authority("chat.example:443")));
        assert!(!origin("https://chat.example").is_served_by(&authority("chat.example:8443")));
        assert!(!origin("http://127.0.0.1").is_served_by(&authority("127.0.0.1:8080")));
        assert!(!origin("https://evil.example").is_served_by(&authority("chat.example")));
        assert!(!origin("https://chat.example.evil").is_served_by(&authority("chat.example")));
    }

    #[test]
    fn authorities_follow_rfc_3986() {
        assert_eq!(authority("a.example:0080").port, Some(80));
        assert_eq!(authority("%41.example").host.as_ref(), "%41.example");
        assert_eq!(authority("[::1]:80").host.as_ref(), "[::1]");
        for value in [
            "",
            ":80",
            "a.example:http",
            "a.example:65536",
            "user@a.example",
            "a example",
            "a.example/",
            "[::1",
            "[::1]x",
            "%4",
            "a\u{e9}.example",
        ] {
            assert_eq!(Authority::parse(value), None, "{value:?} parsed");
        }
    }

    fn request(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::get(target).version(version);
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).expect("valid")
    }

    fn status(result: Result<Option<Authority>, Rejection>) -> Option<StatusCode> {
        result.err().map(|rejection| rejection.status())
    }

    #[test]
    fn host_rules_of_rfc_9112() {
        let h11 = Version::HTTP_11;
        assert_eq!(
            request_authority(&request(h11, "/", &["a.example:8080"])).expect("valid"),
            Some(authority("a.example:8080"))
        );
        let bad = Some(StatusCode::BAD_REQUEST);
        assert_eq!(status(request_authority(&request(h11, "/", &[]))), bad);
        assert_eq!(
            status(request_authority(&request(h11, "/", &["a", "a"]))),
            bad
        );
        assert_eq!(status(request_authority(&request(h11, "/", &["a/b"]))), bad);
        assert_eq!(status(request_authority(&request(h11, "/", &[""]))), bad);
        // Absolute form: the target's authority wins, Host is still required.
        assert_eq!(
            request_authority(&request(h11, "http://b.example/ws", &["a.example"])).expect("ok"),
            Some(authority("b.example"))
        );
        assert_eq!(
            status(request_authority(&request(h11, "http://b.example/", &[]))),
            bad
        );
        assert_eq!(
            status(request_authority(&request(
                h11,
                "http://u@b.example/",
                &["b.example"]
            ))),
            bad
        );
        // HTTP/1.0 did not require Host; HTTP/2 has :authority instead.
        assert_eq!(
            request_authority(&request(Version::HTTP_10, "/", &[])).expect("ok"),
            None
        );
        assert_eq!(
            request_authority(&request(Version::HTTP_2, "https://a.example/x", &[])).expect("ok"),
            Some(authority("a.example"))
        );
        assert_eq!(
            request_authority(&request(
                Version::HTTP_2,
                "https://a.example/",
                &["A.example:"]
            ))
            .expect("ok"),
            Some(authority("a.example"))
        );
        assert_eq!(
            status(request_authority(&request(
                Version::HTTP_2,
                "https://a.example/",
                &["b.example"]
            ))),
            bad
        );
    }

    #[test]
    fn policies() {
        let from = |origin: &str, host: &str| {
            Request::get("/")
                .header(HOST, host)
                .header(ORIGIN, origin)
                .body(())
                .expect("valid")
        };
        let same = OriginPolicy::same_origin();
        assert_eq!(
            same.check(&Request::get("/").header(HOST, "a").body(()).expect("valid")),
            OriginCheck::NoOrigin
        );
        assert_eq!(
            same.check(&from("https://chat.example", "chat.example:443")),
            OriginCheck::SameOrigin
        );
        assert_eq!(
            same.check(&from("https://evil.example", "chat.example")),
            OriginCheck::Refused
        );
        assert_eq!(
            same.check(&from("null", "chat.example")),
            OriginCheck::Refused
        );

        let listed = OriginPolicy::allow(["https://app.example/"]);
        assert_eq!(
            listed.check(&from("https://APP.example:443", "api.example")),
            OriginCheck::Allowed
        );
        assert_eq!(
            listed.check(&from("http://app.example", "api.example")),
            OriginCheck::Refused
        );
        assert_eq!(
            listed.check(&from("null", "api.example")),
            OriginCheck::Refused
        );

        let any = OriginPolicy::any();
        assert!(any.allows_any());
        assert_eq!(
            any.check(&from("null", "api.example")),
            OriginCheck::Allowed
        );
    }

    #[test]
    #[should_panic(expected = "allow-list entry")]
    fn a_bad_allow_list_entry_is_found_at_startup() {
        let _ = OriginPolicy::allow(["app.example"]);
    }
}
