//! Composition: a [`Layer`] wraps a handler in another handler.
//!
//! This is tower's `Layer` sized for WebSocket lifecycles: a middleware is a [`Handler`] that owns
//! another handler and decides what to do before and after calling it (time it, trace it, refuse
//! the upgrade, rate-limit its messages). The layer is the middleware's configuration; `layer`
//! builds the wrapped handler. [`HandlerBuilder`] stacks several, outermost first:
//!
//! ```
//! use wsgrpc::ws::{handler_fn, HandlerBuilder, Identity, Message, SessionHandle};
//!
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! // `Identity` stands in for real layers such as tracing or rate limits.
//! let handler = HandlerBuilder::new().layer(Identity).layer(Identity).handler(echo);
//! # let _ = handler;
//! ```

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
