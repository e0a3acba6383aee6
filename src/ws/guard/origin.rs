//! The origin check: which web pages may open a WebSocket to this server.
//!
//! ```
//! use wsgrpc::ws::guard::OriginLayer;
//! use wsgrpc::ws::{handler_fn, HandlerBuilder, Message, SessionHandle};
//!
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let handler = HandlerBuilder::new()
//!     .layer(OriginLayer::new().allow("https://app.example.com"))
//!     .handler(echo);
//! # let _ = handler;
//! ```

use std::sync::Arc;

use http::header::{HOST, ORIGIN};
use http::{StatusCode, Uri};

use crate::ws::guard::pass_through_after_upgrade;
use crate::ws::{Handler, Layer, Rejection, Upgrade};

/// Refuses upgrades from web pages of other origins with `403`.
///
/// Browsers attach cookies and HTTP auth to WebSocket upgrades from any page, and WebSocket is not
/// covered by CORS, so without this check any site a user visits can open an authenticated
/// connection in the user's name (cross-site WebSocket hijacking). The default policy is the one
/// gorilla/websocket ships: a request without an `Origin` header (not from a browser) passes, a
/// request whose `Origin` host and port equal its `Host` header passes, and everything else is
/// refused with `403` unless its origin is on the allow-list. Allowing every origin must be
/// asked for, with [`OriginLayer::allow_any`].
#[derive(Debug, Clone)]
pub struct OriginLayer {
    policy: Arc<Policy>,
}

#[derive(Debug, Clone)]
enum Policy {
    SameOriginOr(Vec<String>),
    Any,
}

impl OriginLayer {
    /// The same-origin policy with an empty allow-list.
    pub fn new() -> Self {
        OriginLayer {
            policy: Arc::new(Policy::SameOriginOr(Vec::new())),
        }
    }

    /// Also allows pages from `origin`, written as browsers send it: scheme, host and port if not
    /// the default, e.g. `https://app.example.com` or `http://localhost:3000`. Compared ignoring
    /// ASCII case. No effect after [`allow_any`](Self::allow_any).
    #[must_use]
    pub fn allow(mut self, origin: impl Into<String>) -> Self {
        let mut origin = origin.into();
        // A trailing slash is a common slip when copying an origin from a URL bar.
        while origin.ends_with('/') {
            origin.pop();
        }
        if let Policy::SameOriginOr(allowed) = Arc::make_mut(&mut self.policy) {
            allowed.push(origin);
        }
        self
    }

    /// Allows every origin: any web page may open connections with the user's cookies. Only for
    /// endpoints that use no ambient credentials (cookies, HTTP auth, client certificates).
    pub fn allow_any() -> Self {
        OriginLayer {
            policy: Arc::new(Policy::Any),
        }
    }

    /// Applies the policy to an upgrade request: `Ok` to let it through, else the `403`.
    pub fn check(&self, upgrade: &Upgrade) -> Result<(), Rejection> {
        let allowed = match &*self.policy {
            Policy::Any => true,
            Policy::SameOriginOr(allowed) => match upgrade.headers().get(ORIGIN) {
                None => true,
                Some(origin) => origin.to_str().is_ok_and(|origin| {
                    same_origin(origin, upgrade)
                        || allowed
                            .iter()
                            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
                }),
            },
        };
        if allowed {
            Ok(())
        } else {
            tracing::debug!(
                origin = ?upgrade.headers().get(ORIGIN),
                host = ?upgrade.headers().get(HOST),
                "websocket upgrade from another origin refused"
            );
            Err(Rejection::new(
                StatusCode::FORBIDDEN,
                "cross-origin websocket request refused\n",
            ))
        }
    }
}

impl Default for OriginLayer {
    fn default() -> Self {
        OriginLayer::new()
    }
}

/// Whether the origin's `host[:port]` equals the request's `Host` header, ignoring ASCII case.
fn same_origin(origin: &str, upgrade: &Upgrade) -> bool {
    let Some(host) = upgrade
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
    else {
        return false;
    };
    // `null` (sandboxed frames, file: pages) and anything that is not scheme://authority fails
    // here, which is what we want.
    let Ok(origin) = origin.parse::<Uri>() else {
        return false;
    };
    match (origin.scheme(), origin.authority()) {
        (Some(_), Some(authority)) => {
            !authority.as_str().contains('@') && authority.as_str().eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

impl<H> Layer<H> for OriginLayer {
    type Handler = Origin<H>;

    fn layer(&self, inner: H) -> Origin<H> {
        Origin::new(inner, self.clone())
    }
}

/// A handler behind an origin check; made by [`OriginLayer`].
#[derive(Debug, Clone)]
pub struct Origin<H> {
    inner: H,
    layer: OriginLayer,
}

impl<H> Origin<H> {
    /// `inner` behind the policy of `layer`.
    pub fn new(inner: H, layer: OriginLayer) -> Self {
        Origin { inner, layer }
    }

    /// The wrapped handler.
    pub fn get_ref(&self) -> &H {
        &self.inner
    }

    /// Unwraps the handler.
    pub fn into_inner(self) -> H {
        self.inner
    }
}

impl<H: Handler> Handler for Origin<H> {
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        self.layer.check(upgrade)?;
        self.inner.on_upgrade(upgrade).await
    }

    pass_through_after_upgrade!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn upgrade(host: &str, origin: Option<&str>) -> Upgrade {
        let mut request = Request::get("/ws")
            .header("host", host)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        Upgrade::from_request(request.body(()).expect("valid"), None).expect("valid upgrade")
    }

    #[test]
    fn default_policy_is_same_origin() {
        let layer = OriginLayer::new();
        assert!(layer.check(&upgrade("example.com", None)).is_ok());
        assert!(
            layer
                .check(&upgrade("example.com", Some("https://EXAMPLE.com")))
                .is_ok()
        );
        assert!(
            layer
                .check(&upgrade(
                    "example.com:8080",
                    Some("http://example.com:8080")
                ))
                .is_ok()
        );
        for origin in [
            "https://evil.com",
            "http://example.com:8080", // host without the port
            "null",
            "https://user@example.com",
            "example.com",
        ] {
            let refused = layer
                .check(&upgrade("example.com", Some(origin)))
                .expect_err(origin);
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        }
    }

    #[test]
    fn allow_list_and_allow_any() {
        let layer = OriginLayer::new().allow("https://app.example.com/");
        assert!(
            layer
                .check(&upgrade("api.example.com", Some("https://app.example.com")))
                .is_ok()
        );
        assert!(
            layer
                .check(&upgrade(
                    "api.example.com",
                    Some("https://other.example.com")
                ))
                .is_err()
        );
        assert!(
            OriginLayer::allow_any()
                .check(&upgrade("api.example.com", Some("https://evil.com")))
                .is_ok()
        );
    }
}
