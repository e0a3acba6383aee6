//! Upgrade guards: layers that check the HTTP upgrade request and can refuse it before the `101`.
//!
//! A guard is an ordinary [`Layer`](crate::ws::Layer) whose handler checks the request in
//! [`on_upgrade`](crate::ws::Handler::on_upgrade) and then delegates; every other hook passes
//! straight through to the inner handler, at no cost. A refusal is an HTTP response
//! ([`Rejection`](crate::ws::Rejection)) with a status and a body, which a browser or client can
//! read, rather than a WebSocket that opens and closes at once.
//!
//! ```
//! use http::StatusCode;
//! use wsgrpc::ws::guard::{AuthLayer, ProtocolLayer};
//! use wsgrpc::ws::{handler_fn, HandlerBuilder, Message, Rejection, SessionHandle};
//!
//! /// Who a valid token belongs to; guards put it in the session's extensions.
//! struct User(String);
//!
//! let check_token = |token: String| async move {
//!     match token.as_str() {
//!         "let-me-in" => Ok(User("ann".to_owned())),
//!         _ => Err(Rejection::new(StatusCode::FORBIDDEN, "unknown token\n")),
//!     }
//! };
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let handler = HandlerBuilder::new()
//!     // With feature `rate-limit` (on by default): at most 10 upgrades a minute from one IP
//!     // address, more get 429 with Retry-After.
//!     // .layer(UpgradeRateLimitLayer::new(10, Duration::from_secs(60)))
//!     // `Authorization: Bearer <token>`, or `?access_token=<token>` for browsers.
//!     .layer(AuthLayer::new(check_token).query_param("access_token"))
//!     // Answer with the first of these the client offers; `session.protocol()` tells which.
//!     .layer(ProtocolLayer::new(["chat.v2", "chat.v1"]))
//!     .handler(echo);
//! # let _ = handler;
//! ```
//!
//! - The origin check is not a guard: it is on by default in every server, as
//!   [`Config::origin_policy`](crate::ws::Config::origin_policy) (cross-site pages get `403`),
//!   so forgetting a layer cannot open the cross-site WebSocket hijacking hole.
//! - [`UpgradeRateLimitLayer`] (feature `rate-limit`): upgrades per client IP address (or per key you derive, such as
//!   the authenticated user), `429` with `Retry-After` beyond the limit.
//! - [`AuthLayer`]: a bearer token from the `Authorization` header or a query parameter, checked
//!   by your async function; what it returns is in the session's extensions (`401` without a
//!   token, your rejection for a bad one).
//! - [`ProtocolLayer`]: `Sec-WebSocket-Protocol` negotiation; the chosen protocol is
//!   [`Session::protocol`](crate::ws::Session::protocol).

mod auth;
mod protocol;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
mod rate_limit;

pub use auth::{Auth, AuthLayer, Authenticate};
pub use protocol::{Protocol, ProtocolLayer};
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub use rate_limit::{UpgradeRateLimit, UpgradeRateLimitLayer};

/// Forwards the hooks after `on_upgrade` to `self.inner` unchanged.
macro_rules! pass_through_after_upgrade {
    () => {
        fn on_open(
            &self,
            session: &mut crate::ws::Session,
        ) -> impl std::future::Future<Output = crate::Result<()>> + Send {
            self.inner.on_open(session)
        }

        fn on_message(
            &self,
            session: &mut crate::ws::Session,
            message: crate::ws::Message,
        ) -> impl std::future::Future<Output = crate::Result<()>> + Send {
            self.inner.on_message(session, message)
        }

        fn on_close(
            &self,
            session: &mut crate::ws::Session,
            reason: crate::ws::CloseReason,
        ) -> impl std::future::Future<Output = ()> + Send {
            self.inner.on_close(session, reason)
        }
    };
}
pub(crate) use pass_through_after_upgrade;
