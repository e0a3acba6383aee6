//! Token authentication at upgrade time, with your own async check.
//!
//! ```
//! use http::StatusCode;
//! use wsgrpc::ws::guard::AuthLayer;
//! use wsgrpc::ws::{Handler, HandlerBuilder, Rejection, Session};
//!
//! struct UserId(u64);
//!
//! /// Greets the authenticated user.
//! struct Greeter;
//!
//! impl Handler for Greeter {
//!     async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
//!         let user = session.extensions().get::<UserId>().map_or(0, |user| user.0);
//!         session.send(format!("hello, user {user}")).await
//!     }
//! }
//!
//! let auth = AuthLayer::new(|token: String| async move {
//!     // A real check would ask a session store or verify a signature.
//!     token
//!         .strip_prefix("user-")
//!         .and_then(|id| id.parse().ok())
//!         .map(UserId)
//!         .ok_or_else(|| Rejection::new(StatusCode::FORBIDDEN, "invalid token\n"))
//! });
//! let handler = HandlerBuilder::new().layer(auth).handler(Greeter);
//! # let _ = handler;
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::ws::guard::pass_through_after_upgrade;
use crate::ws::{Handler, Layer, Rejection, Upgrade};

/// Checks a bearer token and says who it belongs to.
///
/// Implemented for every `Fn(String) -> impl Future<Output = Result<U, Rejection>>`, so an async
/// closure is enough; implement it on a type to hold a database pool or a key set.
pub trait Authenticate: Send + Sync + 'static {
    /// Who the token identifies; inserted into the session's extensions (any `Send + Sync` type,
    /// `()` when there is nothing to keep).
    type User: Send + Sync + 'static;

    /// Checks `token`; an `Err` is sent to the client as the upgrade's answer.
    fn authenticate(
        &self,
        token: String,
    ) -> impl Future<Output = Result<Self::User, Rejection>> + Send;
}

impl<F, Fut, U> Authenticate for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, Rejection>> + Send,
    U: Send + Sync + 'static,
{
    type User = U;

    fn authenticate(&self, token: String) -> impl Future<Output = Result<U, Rejection>> + Send {
        self(token)
    }
}

/// Requires a token that `A` accepts.
///
/// The token comes from `Authorization: Bearer <token>` (what non-browser clients send) and,
/// when enabled with [`AuthLayer::query_param`], from a query parameter, because the browser
/// `WebSocket` API cannot set headers. Your [`Authenticate`] check (an async closure is enough)
/// turns the token into whatever identifies the caller, which then sits in the session's
/// extensions for every later hook; or it refuses with a [`Rejection`] of your choosing.
///
/// A request without a token gets `401` with `WWW-Authenticate: Bearer` (RFC 6750). Tokens in
/// query strings end up in access logs and browser history: prefer short-lived ones there.
///
/// Default sources: the `Authorization: Bearer` header only.
pub struct AuthLayer<A> {
    authenticate: Arc<A>,
    bearer_header: bool,
    query_param: Option<Cow<'static, str>>,
}

impl<A: Authenticate> AuthLayer<A> {
    /// Checks tokens with `authenticate`, reading them from the `Authorization` header.
    pub fn new(authenticate: A) -> Self {
        AuthLayer {
            authenticate: Arc::new(authenticate),
            bearer_header: true,
            query_param: None,
        }
    }

    /// Also reads the token from the query parameter `name` (form-decoded), for browsers. When
    /// both are present, the header wins.
    #[must_use]
    pub fn query_param(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.query_param = Some(name.into());
        self
    }

    /// Whether to read `Authorization: Bearer` (default `true`); turn off to accept query tokens
    /// only.
    #[must_use]
    pub fn bearer_header(mut self, enabled: bool) -> Self {
        self.bearer_header = enabled;
        self
    }

    /// The token of an upgrade request, from the enabled sources.
    fn token(&self, upgrade: &Upgrade) -> Option<String> {
        let from_header = self
            .bearer_header
            .then(|| {
                upgrade
                    .headers()
                    .get_all(AUTHORIZATION)
                    .iter()
                    .find_map(bearer)
            })
            .flatten();
        from_header.or_else(|| {
            let name = self.query_param.as_deref()?;
            let token = upgrade.query_param(name)?;
            (!token.is_empty()).then(|| token.into_owned())
        })
    }
}

impl<A> Clone for AuthLayer<A> {
    fn clone(&self) -> Self {
        AuthLayer {
            authenticate: self.authenticate.clone(),
            bearer_header: self.bearer_header,
            query_param: self.query_param.clone(),
        }
    }
}

impl<A> std::fmt::Debug for AuthLayer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("bearer_header", &self.bearer_header)
            .field("query_param", &self.query_param)
            .finish_non_exhaustive()
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 7235).
fn bearer(value: &HeaderValue) -> Option<String> {
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

impl<H, A> Layer<H> for AuthLayer<A> {
    type Handler = Auth<H, A>;

    fn layer(&self, inner: H) -> Auth<H, A> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

/// A handler behind token authentication; made by [`AuthLayer`].
pub struct Auth<H, A> {
    inner: H,
    layer: AuthLayer<A>,
}

impl<H, A> Auth<H, A> {
    /// `inner` behind the check of `layer`.
    pub fn new(inner: H, layer: AuthLayer<A>) -> Self {
        Auth { inner, layer }
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

impl<H: Clone, A> Clone for Auth<H, A> {
    fn clone(&self) -> Self {
        Auth {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<H: std::fmt::Debug, A> std::fmt::Debug for Auth<H, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<H: Handler, A: Authenticate> Handler for Auth<H, A> {
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        let Some(token) = self.layer.token(upgrade) else {
            return Err(
                Rejection::new(StatusCode::UNAUTHORIZED, "a bearer token is required\n")
                    .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            );
        };
        let user = self.layer.authenticate.authenticate(token).await?;
        upgrade.extensions_mut().insert(user);
        self.inner.on_upgrade(upgrade).await
    }

    pass_through_after_upgrade!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_query_tokens() {
        assert_eq!(
            bearer(&HeaderValue::from_static("Bearer abc.def")).as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            bearer(&HeaderValue::from_static("bearer  xyz ")).as_deref(),
            Some("xyz")
        );
        assert_eq!(bearer(&HeaderValue::from_static("Basic dXNlcg==")), None);
        assert_eq!(bearer(&HeaderValue::from_static("Bearer ")), None);
        let layer = AuthLayer::new(|_token: String| async { Ok(()) }).query_param("access_token");
        let token = |uri: &str, authorization: Option<&str>| {
            let mut request = http::Request::get(uri)
                .header("host", "example.com")
                .header("upgrade", "websocket")
                .header("connection", "upgrade")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            let request = request.body(()).expect("valid request");
            layer.token(&Upgrade::from_request(request, None).expect("valid upgrade"))
        };
        assert_eq!(
            token("/ws?nick=ann&access_token=a%2Bb+c", None).as_deref(),
            Some("a+b c")
        );
        assert_eq!(token("/ws?access_token=", None), None);
        assert_eq!(token("/ws?token=x", None), None);
        assert_eq!(token("/ws", None), None);
        // The header wins over the query.
        assert_eq!(
            token("/ws?access_token=q", Some("Bearer h")).as_deref(),
            Some("h")
        );
    }
}
