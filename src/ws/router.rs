//! Dispatch by request path: one server, several endpoints, each with its own handler.
//!
//! A [`Router`] is a [`Handler`] that picks another handler by the upgrade request's path, before
//! the `101`. An unknown path is answered with HTTP `404` while it is still an HTTP request, never
//! with a dropped socket. Patterns are [`matchit`]'s, as in axum: literal segments, named captures
//! (`{room}`, one segment) and a trailing catch-all (`{*rest}`, the remainder); captures reach the
//! session as [`PathParams`].
//!
//! ```
//! use wsgrpc::ws::{handler_fn, Handler, Message, PathParams, Router, Session, SessionHandle};
//!
//! /// Greets each connection with the room it joined.
//! struct Room;
//!
//! impl Handler for Room {
//!     async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
//!         let params = session.extensions().get::<PathParams>();
//!         let room = params.and_then(|params| params.get("room")).unwrap_or("?");
//!         session.send(format!("welcome to {room}")).await
//!     }
//! }
//!
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let router = Router::new()
//!     .route("/rooms/{room}", Room)
//!     .route("/echo", echo);
//! # let _ = router;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::StatusCode;
use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};
use crate::ws::{CloseReason, Handler, Message, Rejection, Session, Upgrade};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A [`Handler`] that dispatches each connection to the handler of the route its path matches.
///
/// Unknown paths are refused with `404` (see [`not_found`](Self::not_found) to change the
/// answer). The chosen route's own `on_upgrade` runs after matching, so each route can have its
/// own guards; its captures are in the session's extensions as [`PathParams`].
///
/// # Matching
///
/// The routing table is [`matchit`]'s, the one axum uses, so patterns read and rank as they do
/// there. Paths are compared exactly (a trailing slash matters). When several patterns match,
/// the most specific wins whatever the order they were added in: a literal beats a capture, and a
/// capture beats a catch-all. So `/rooms/new` wins over `/rooms/{room}` for that one path. A
/// capture may follow a literal prefix inside one segment (`/v{version}`), as in axum. Two
/// patterns that differ only in capture names, or that put a capture and a catch-all at the same
/// place (`/a/{x}` and `/a/{*rest}`), conflict: [`route`](Self::route) panics.
///
/// Captures are percent-decoded (`%20` is a space; `+` stays `+`, as paths are not forms); a
/// capture that does not decode to UTF-8 is answered as an unknown path, and a `%` not followed
/// by two hex digits stays as it is (both as axum's `Path` does).
///
/// # Cost
///
/// Routes hold handlers of different types, so the router calls them through an object-safe
/// internal trait: each hook call on a routed connection boxes its future once (one allocation of
/// the route handler's future size, per message). Matching itself happens once per connection, at
/// upgrade time; afterwards the chosen route is an index stored in the session. A server with a
/// single endpoint pays nothing of this if it serves that handler directly.
///
#[derive(Clone)]
pub struct Router {
    /// Pattern to index into `routes`.
    table: Arc<matchit::Router<usize>>,
    routes: Arc<[Route]>,
    not_found: Rejection,
}

#[derive(Clone)]
struct Route {
    pattern: Arc<str>,
    handler: Arc<dyn DynHandler>,
}

impl Router {
    /// A router without routes: every path gets `404`.
    pub fn new() -> Self {
        Router {
            table: Arc::new(matchit::Router::new()),
            routes: Arc::from([]),
            not_found: Rejection::new(
                StatusCode::NOT_FOUND,
                "no websocket endpoint at this path\n",
            ),
        }
    }

    /// Adds a route. `pattern` starts with `/`; segments are literals, `{name}` (one segment, at
    /// least one character) or, last only, `{*name}` (the rest of the path, slashes included, at
    /// least one character). `{{` and `}}` stand for literal braces.
    ///
    /// # Panics
    ///
    /// At setup, like axum: when the pattern does not start with `/`, is malformed (an empty
    /// capture name, a catch-all that is not last, two captures in one segment), or conflicts
    /// with a route added before (one that matches the same paths, such as `/a/{x}` after
    /// `/a/{y}`). The message names the pattern and, for a conflict, the route it conflicts with.
    #[must_use]
    pub fn route<H: Handler>(self, pattern: &str, handler: H) -> Self {
        assert!(
            pattern.starts_with('/'),
            "invalid route `{pattern}`: it must start with `/`"
        );
        let index = self.routes.len();
        let mut table = matchit::Router::clone(&self.table);
        if let Err(error) = table.insert(pattern, index) {
            panic!("invalid route `{pattern}`: {error}");
        }
        let mut routes = self.routes.to_vec();
        routes.push(Route {
            pattern: pattern.into(),
            handler: Arc::new(handler),
        });
        Router {
            table: Arc::new(table),
            routes: routes.into(),
            not_found: self.not_found,
        }
    }

    /// Replaces the answer to a path no route matches. Default: `404` with a short text body.
    #[must_use]
    pub fn not_found(mut self, rejection: Rejection) -> Self {
        self.not_found = rejection;
        self
    }

    /// The best route for `path` and its percent-decoded captures.
    fn find(&self, path: &str) -> Option<(usize, PathParams)> {
        let matched = self.table.at(path).ok()?;
        let index = *matched.value;
        let captures = matched
            .params
            .iter()
            .map(|(name, value)| {
                let value = percent_decode_str(value).decode_utf8().ok()?;
                Some((name.into(), value.into_owned()))
            })
            .collect::<Option<Vec<_>>>()?;
        let pattern = self.routes[index].pattern.clone();
        Some((index, PathParams { pattern, captures }))
    }

    /// The route chosen at upgrade time, or (for a connection whose `on_upgrade` never ran, as
    /// with a hand-driven [`serve_connection`](crate::ws::serve_connection)) the one its path
    /// matches now.
    fn route_of(&self, session: &mut Session) -> Option<&Route> {
        if let Some(chosen) = session.extensions().get::<RouteIndex>() {
            return self.routes.get(chosen.0);
        }
        let (index, params) = self.find(session.path())?;
        session.extensions_mut().insert(RouteIndex(index));
        session.extensions_mut().insert(params);
        self.routes.get(index)
    }
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|route| &*route.pattern)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Handler for Router {
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        let Some((index, params)) = self.find(upgrade.path()) else {
            tracing::debug!(path = upgrade.path(), "no route for websocket upgrade");
            return Err(self.not_found.clone());
        };
        upgrade.extensions_mut().insert(RouteIndex(index));
        upgrade.extensions_mut().insert(params);
        self.routes[index].handler.on_upgrade_boxed(upgrade).await
    }

    async fn on_open(&self, session: &mut Session) -> Result<()> {
        match self.route_of(session) {
            Some(route) => route.handler.on_open_boxed(session).await,
            None => Err(Error::handler(NoRoute)),
        }
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> Result<()> {
        // The route is borrowed from `self`, not cloned out of its `Arc`: no reference counting
        // per message, only the one box of the route handler's future.
        match self.route_of(session) {
            Some(route) => route.handler.on_message_boxed(session, message).await,
            None => Err(Error::handler(NoRoute)),
        }
    }

    async fn on_close(&self, session: &mut Session, reason: CloseReason) {
        if let Some(route) = self.route_of(session) {
            route.handler.on_close_boxed(session, reason).await;
        }
    }
}

/// Raised when a connection reaches a router without a matching route, which only happens when
/// something skipped `on_upgrade`.
#[derive(Debug)]
struct NoRoute;

impl fmt::Display for NoRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no route matches the connection's path")
    }
}

impl std::error::Error for NoRoute {}

/// The route a connection was dispatched to, as an index into the router's routes.
struct RouteIndex(usize);

/// The named captures of the route a connection matched, in the session's extensions.
///
/// ```
/// # use wsgrpc::ws::{PathParams, Session};
/// fn room(session: &Session) -> Option<&str> {
///     session.extensions().get::<PathParams>()?.get("room")
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathParams {
    pattern: Arc<str>,
    /// `(name, decoded value)` in pattern order.
    captures: Vec<(Box<str>, String)>,
}

impl PathParams {
    /// The value captured by `{name}` (or `{*name}`), percent-decoded.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.captures
            .iter()
            .find(|(captured, _)| &**captured == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every capture as `(name, value)`, in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.captures
            .iter()
            .map(|(name, value)| (&**name, value.as_str()))
    }

    /// The pattern of the route that matched, e.g. `/rooms/{room}` (low-cardinality, so fit for
    /// metrics labels, unlike the path).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Number of captures.
    pub fn len(&self) -> usize {
        self.captures.len()
    }

    /// Whether the route captured nothing.
    pub fn is_empty(&self) -> bool {
        self.captures.is_empty()
    }
}

/// [`Handler`] made object safe, so one router can hold handlers of different types. Each call
/// boxes the hook's future once.
trait DynHandler: Send + Sync + 'static {
    fn on_upgrade_boxed<'a>(
        &'a self,
        upgrade: &'a mut Upgrade,
    ) -> BoxFuture<'a, Result<(), Rejection>>;
    fn on_open_boxed<'a>(&'a self, session: &'a mut Session) -> BoxFuture<'a, Result<()>>;
    fn on_message_boxed<'a>(
        &'a self,
        session: &'a mut Session,
        message: Message,
    ) -> BoxFuture<'a, Result<()>>;
    fn on_close_boxed<'a>(
        &'a self,
        session: &'a mut Session,
        reason: CloseReason,
    ) -> BoxFuture<'a, ()>;
}

impl<H: Handler> DynHandler for H {
    fn on_upgrade_boxed<'a>(
        &'a self,
        upgrade: &'a mut Upgrade,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(self.on_upgrade(upgrade))
    }

    fn on_open_boxed<'a>(&'a self, session: &'a mut Session) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.on_open(session))
    }

    fn on_message_boxed<'a>(
        &'a self,
        session: &'a mut Session,
        message: Message,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.on_message(session, message))
    }

    fn on_close_boxed<'a>(
        &'a self,
        session: &'a mut Session,
        reason: CloseReason,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.on_close(session, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Handler for Nothing {}

    fn router() -> Router {
        Router::new()
            .route("/rooms/{room}", Nothing)
            .route("/rooms/new", Nothing)
            .route("/files/{*path}", Nothing)
            .route("/", Nothing)
            .route("/users/{user}/posts/{post}", Nothing)
    }

    fn params(router: &Router, path: &str) -> Option<(String, Vec<(String, String)>)> {
        router.find(path).map(|(_, params)| {
            (
                params.pattern().to_owned(),
                params
                    .iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect(),
            )
        })
    }

    #[test]
    fn captures_literals_and_catch_all() {
        let router = router();
        let (pattern, captures) = params(&router, "/rooms/lobby").expect("match");
        assert_eq!(pattern, "/rooms/{room}");
        assert_eq!(captures, [("room".to_owned(), "lobby".to_owned())]);
        assert_eq!(
            params(&router, "/rooms/new").expect("match").0,
            "/rooms/new"
        );
        let (_, captures) = params(&router, "/files/a/b%20c.txt").expect("match");
        assert_eq!(captures, [("path".to_owned(), "a/b c.txt".to_owned())]);
        let (_, captures) = params(&router, "/users/7/posts/9").expect("match");
        assert_eq!(captures.len(), 2);
        assert_eq!(params(&router, "/").expect("match").0, "/");
    }

    #[test]
    fn near_misses_do_not_match() {
        let router = router();
        for path in [
            "/rooms",
            "/rooms/",
            "/rooms/lobby/",
            "/rooms/lobby/x",
            "/files/",
            "/nope",
            "",
            "/rooms/%ff", // not UTF-8 once decoded
        ] {
            assert!(router.find(path).is_none(), "{path} should not match");
        }
    }

    #[test]
    fn malformed_escapes_stay_as_they_are() {
        // As axum's `Path`: a `%` without two hex digits is kept, not refused.
        let (_, captures) = params(&router(), "/rooms/%g1").expect("match");
        assert_eq!(captures, [("room".to_owned(), "%g1".to_owned())]);
    }

    #[test]
    fn specificity_does_not_depend_on_order() {
        let reversed = Router::new()
            .route("/a/{x}", Nothing)
            .route("/a/b", Nothing)
            .route("/f/{*rest}", Nothing)
            .route("/f/index", Nothing);
        assert_eq!(params(&reversed, "/a/b").expect("match").0, "/a/b");
        assert_eq!(params(&reversed, "/a/c").expect("match").0, "/a/{x}");
        assert_eq!(params(&reversed, "/f/index").expect("match").0, "/f/index");
        assert_eq!(params(&reversed, "/f/c/d").expect("match").0, "/f/{*rest}");
    }

    #[test]
    #[should_panic(expected = "invalid route `/a/{y}`: Insertion failed due to conflict \
                               with previously registered route: /a/{x}")]
    fn conflicting_routes_panic_naming_both() {
        let _ = Router::new()
            .route("/a/{x}", Nothing)
            .route("/a/{y}", Nothing);
    }

    #[test]
    #[should_panic(expected = "conflict with previously registered route: /a/{x}")]
    fn a_capture_and_a_catch_all_at_one_place_conflict() {
        // matchit's rule, as in axum: the two would compete for every one-segment path.
        let _ = Router::new()
            .route("/a/{x}", Nothing)
            .route("/a/{*rest}", Nothing);
    }

    #[test]
    fn malformed_patterns_panic_naming_the_pattern() {
        for pattern in ["a", "/a/{}", "/a/{*rest}/b", "/a/{x}{y}", "/a/{x"] {
            let outcome = std::panic::catch_unwind(|| Router::new().route(pattern, Nothing));
            let message = outcome.err().map(|panic| match panic.downcast::<String>() {
                Ok(message) => *message,
                Err(_) => String::new(),
            });
            assert!(
                message.as_deref().is_some_and(
                    |message| message.starts_with(&format!("invalid route `{pattern}`"))
                ),
                "{pattern} should be refused, got {message:?}"
            );
        }
    }
}
