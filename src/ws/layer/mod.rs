//! Composition: a [`Layer`] wraps a handler in another handler, and the ready-made layers.
//!
//! This is tower's `Layer` sized for WebSocket lifecycles: a middleware is a [`Handler`] that owns
//! another handler and decides what to do before and after calling it (time it, trace it, refuse
//! the upgrade, rate-limit its messages). The layer is the middleware's configuration; `layer`
//! builds the wrapped handler. [`HandlerBuilder`] stacks several, outermost first:
//!
//! ```
//! use std::time::Duration;
//! use wsgrpc::ws::layer::{TimeoutLayer, TraceLayer};
//! use wsgrpc::ws::{handler_fn, HandlerBuilder, Message, SessionHandle};
//!
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let handler = HandlerBuilder::new()
//!     .layer(TraceLayer::new())
//!     // With feature `rate-limit` (on by default), a message rate limit goes here:
//!     // .layer(RateLimitLayer::new(20, Duration::from_secs(1)))
//!     .layer(TimeoutLayer::new(Duration::from_secs(10)))
//!     .handler(echo);
//! # let _ = handler;
//! ```
//!
//! # Ready layers
//!
//! Each is a pair, `FooLayer` (the configuration) and `Foo<H>` (the wrapped handler, with `new`,
//! `get_ref` and `into_inner`), and they stack in any order:
//!
//! - [`TraceLayer`]: a span per connection (id, peer, path); counts and close code on close.
//! - [`RateLimitLayer`] (feature `rate-limit`): a token bucket per connection; excess closes with
//!   1008 by default.
//! - [`TimeoutLayer`]: a deadline on each message's handling; closes with 1011 when it passes.
//! - The guards in [`guard`](crate::ws::guard) (origin, auth, subprotocol) are layers too.
//!
//! There is no catch-panic layer: it is not needed, because the server already contains panics.
//! A hook that panics closes its own connection with 1011 and the server keeps serving.
//!
//! Order matters where layers interact: a layer sees what the layers outside it let through. Put
//! [`TraceLayer`] outermost to trace rate-limit and timeout closes too, and the rate limit outside
//! the timeout so that excess messages are refused without starting a timer.

#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
mod rate_limit;
mod timeout;
mod trace;

#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub use rate_limit::{Excess, RateLimit, RateLimitLayer};
pub use timeout::{Timeout, TimeoutLayer};
pub use trace::{Trace, TraceLayer};

#[cfg(doc)]
use crate::ws::Handler;

/// Wraps a handler of type `H` into another handler.
pub trait Layer<H> {
    /// The wrapped handler.
    type Handler;

    /// Wraps `inner`.
    fn layer(&self, inner: H) -> Self::Handler;
}

/// The layer that changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl<H> Layer<H> for Identity {
    type Handler = H;

    fn layer(&self, inner: H) -> H {
        inner
    }
}

/// Two layers, `outer` around `inner`.
#[derive(Debug, Clone)]
pub struct Stack<Inner, Outer> {
    inner: Inner,
    outer: Outer,
}

impl<Inner, Outer> Stack<Inner, Outer> {
    /// `outer` wrapped around `inner`.
    pub fn new(inner: Inner, outer: Outer) -> Self {
        Stack { inner, outer }
    }
}

impl<H, Inner, Outer> Layer<H> for Stack<Inner, Outer>
where
    Inner: Layer<H>,
    Outer: Layer<Inner::Handler>,
{
    type Handler = Outer::Handler;

    fn layer(&self, handler: H) -> Self::Handler {
        self.outer.layer(self.inner.layer(handler))
    }
}

/// Stacks layers around a handler; the first layer added is the outermost.
#[derive(Debug, Clone)]
pub struct HandlerBuilder<L> {
    layer: L,
}

impl HandlerBuilder<Identity> {
    /// A builder with no layers.
    pub fn new() -> Self {
        HandlerBuilder { layer: Identity }
    }
}

impl Default for HandlerBuilder<Identity> {
    fn default() -> Self {
        HandlerBuilder::new()
    }
}

impl<L> HandlerBuilder<L> {
    /// Adds a layer inside the ones added before it.
    pub fn layer<T>(self, layer: T) -> HandlerBuilder<Stack<T, L>> {
        HandlerBuilder {
            layer: Stack::new(layer, self.layer),
        }
    }

    /// Wraps `handler` in all the layers.
    pub fn handler<H>(self, handler: H) -> L::Handler
    where
        L: Layer<H>,
    {
        self.layer.layer(handler)
    }

    /// The stacked layers, to reuse around several handlers.
    pub fn into_layer(self) -> L {
        self.layer
    }
}
