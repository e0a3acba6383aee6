//! Dispatch by request path: one server, several endpoints, each with its own handler.
//!
//! A [`Router`] is a [`Handler`] that picks another handler by the upgrade request's path, before
//! the `101`. An unknown path is answered with HTTP `404` while it is still an HTTP request, never
//! with a dropped socket. Patterns have literal segments, named captures (`{room}`, one segment)
//! and a trailing catch-all (`{*rest}`, the remainder); captures reach the session as
//! [`PathParams`].
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
/// Paths are compared segment by segment, exactly (a trailing slash matters). When several
/// patterns match, the most specific wins whatever the order they were added in: at the first
/// segment where they differ, a literal beats a capture, and a capture beats a catch-all. So
/// `/rooms/new` wins over `/rooms/{room}` for that one path. Captures are percent-decoded; a
/// capture that does not decode to UTF-8 does not match.
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
    routes: Arc<[Route]>,
    not_found: Rejection,
}

#[derive(Clone)]
struct Route {
    pattern: Pattern,
    handler: Arc<dyn DynHandler>,
}

impl Router {
    /// A router without routes: every path gets `404`.
    pub fn new() -> Self {
        Router {
            routes: Arc::from([]),
            not_found: Rejection::new(
                StatusCode::NOT_FOUND,
                "no websocket endpoint at this path\n",
            ),
        }
    }

    /// Adds a route. `pattern` starts with `/`; segments are literals, `{name}` (one segment) or,
    /// last only, `{*name}` (the rest of the path, slashes included, at least one character).
    ///
    /// # Panics
    ///
    /// At setup, like axum: when the pattern is malformed (no leading `/`, an empty or repeated
    /// capture name, a catch-all that is not last) or the same pattern was added before.
    #[must_use]
    pub fn route<H: Handler>(self, pattern: &str, handler: H) -> Self {
        let pattern = Pattern::parse(pattern).unwrap_or_else(|problem| {
            panic!("invalid route pattern `{pattern}`: {problem}");
        });
        if let Some(existing) = self
            .routes
            .iter()
            .find(|route| route.pattern.same_shape(&pattern))
        {
            panic!(
                "route `{}` added twice (as `{}`)",
                pattern.source, existing.pattern.source
            );
        }
        let mut routes = self.routes.to_vec();
        routes.push(Route {
            pattern,
            handler: Arc::new(handler),
        });
        Router {
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

    /// The best route for `path` and its captures.
    fn find(&self, path: &str) -> Option<(usize, PathParams)> {
        let mut best: Option<(usize, Vec<Capture>)> = None;
        for (index, route) in self.routes.iter().enumerate() {
            let Some(captures) = route.pattern.matches(path) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((current, _)) => route
                    .pattern
                    .is_more_specific_than(&self.routes[*current].pattern),
            };
            if better {
                best = Some((index, captures));
            }
        }
        best.map(|(index, captures)| {
            let pattern = self.routes[index].pattern.source.clone();
            (index, PathParams { pattern, captures })
        })
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
                    .map(|route| &*route.pattern.source)
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
    captures: Vec<Capture>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Capture {
    name: Arc<str>,
    value: String,
}

impl PathParams {
    /// The value captured by `{name}` (or `{*name}`), percent-decoded.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.captures
            .iter()
            .find(|capture| &*capture.name == name)
            .map(|capture| capture.value.as_str())
    }

    /// Every capture as `(name, value)`, in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.captures
            .iter()
            .map(|capture| (&*capture.name, capture.value.as_str()))
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(Arc<str>),
    CatchAll(Arc<str>),
}

impl Segment {
    /// Higher is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Capture(_) => 1,
            Segment::CatchAll(_) => 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Pattern {
    source: Arc<str>,
    segments: Vec<Segment>,
}

impl Pattern {
    fn parse(source: &str) -> Result<Self, &'static str> {
        let rest = source.strip_prefix('/').ok_or("it must start with `/`")?;
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (position, part) in parts.iter().enumerate() {
            let segment = match part
                .strip_prefix('{')
                .and_then(|inner| inner.strip_suffix('}'))
            {
                Some(inner) => {
                    let (catch_all, name) = match inner.strip_prefix('*') {
                        Some(name) => (true, name),
                        None => (false, inner),
                    };
                    if name.is_empty() || name.contains(['{', '}', '*']) {
                        return Err("a capture needs a plain name, as in `{room}` or `{*rest}`");
                    }
                    if names.contains(&name) {
                        return Err("a capture name is used twice");
                    }
                    names.push(name);
                    if catch_all {
                        if position + 1 != parts.len() {
                            return Err("a catch-all `{*name}` must be the last segment");
                        }
                        Segment::CatchAll(name.into())
                    } else {
                        Segment::Capture(name.into())
                    }
                }
                None if part.contains(['{', '}']) => {
                    return Err("a capture must be a whole segment, as in `/rooms/{room}`");
                }
                None => Segment::Literal((*part).to_owned()),
            };
            segments.push(segment);
        }
        Ok(Pattern {
            source: source.into(),
            segments,
        })
    }

    fn matches(&self, path: &str) -> Option<Vec<Capture>> {
        let mut rest = path.strip_prefix('/')?;
        let mut captures = Vec::new();
        for (position, segment) in self.segments.iter().enumerate() {
            let last = position + 1 == self.segments.len();
            if let Segment::CatchAll(name) = segment {
                if rest.is_empty() {
                    return None;
                }
                captures.push(Capture {
                    name: name.clone(),
                    value: percent_decode(rest)?,
                });
                return Some(captures);
            }
            let (part, remainder) = match rest.split_once('/') {
                Some((part, remainder)) if !last => (part, remainder),
                Some(_) => return None, // the path has more segments than the pattern
                None if last => (rest, ""),
                None => return None, // the pattern has more segments than the path
            };
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Capture(name) => {
                    if part.is_empty() {
                        return None;
                    }
                    captures.push(Capture {
                        name: name.clone(),
                        value: percent_decode(part)?,
                    });
                }
                Segment::CatchAll(_) => unreachable!("handled above"),
            }
            rest = remainder;
        }
        Some(captures)
    }

    /// Whether both patterns match exactly the same paths (capture names aside).
    fn same_shape(&self, other: &Pattern) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(mine), Segment::Literal(theirs)) => mine == theirs,
                    (mine, theirs) => mine.rank() == theirs.rank(),
                })
    }

    /// Compares two patterns that both matched one path: at the first differing segment kind, the
    /// more specific wins; with equal kinds throughout, the longer.
    fn is_more_specific_than(&self, other: &Pattern) -> bool {
        for (mine, theirs) in self.segments.iter().zip(&other.segments) {
            match mine.rank().cmp(&theirs.rank()) {
                std::cmp::Ordering::Equal => continue,
                ordering => return ordering.is_gt(),
            }
        }
        self.segments.len() > other.segments.len()
    }
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8 or an escape is malformed.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
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
            "/rooms/%g1", // malformed escape
        ] {
            assert!(router.find(path).is_none(), "{path} should not match");
        }
    }

    #[test]
    fn specificity_does_not_depend_on_order() {
        let reversed = Router::new()
            .route("/a/{x}", Nothing)
            .route("/a/{*rest}", Nothing)
            .route("/a/b", Nothing);
        assert_eq!(params(&reversed, "/a/b").expect("match").0, "/a/b");
        assert_eq!(params(&reversed, "/a/c").expect("match").0, "/a/{x}");
        assert_eq!(params(&reversed, "/a/c/d").expect("match").0, "/a/{*rest}");
    }

    #[test]
    #[should_panic(expected = "added twice")]
    fn duplicate_routes_panic() {
        let _ = Router::new()
            .route("/a/{x}", Nothing)
            .route("/a/{y}", Nothing);
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for pattern in ["a", "/a/{}", "/a/{*rest}/b", "/a/x{y}", "/{a}/{a}"] {
            assert!(
                Pattern::parse(pattern).is_err(),
                "{pattern} should be refused"
            );
        }
    }
}
