//! The request layers the server puts in front of its services, usable on their own.
//!
//! Each layer is a tower `Layer`/`Service` pair in its own file. [`GrpcLayer`] stacks them as the
//! server configures them, so another HTTP/2 server (an axum router sharing a port, say) gets the
//! same checks, limits, deadline, auth and tracing without tonic's `Server`. None of them turns a
//! refusal into a transport error: each answers with a complete gRPC status response (or, for a
//! request that is not gRPC at all, a `415`), so the stack keeps the inner service's error type
//! (`Infallible` for tonic's `Routes`).

mod auth;
mod content_type;
mod deadline;
mod limit;
mod metrics;
mod trace;

pub use auth::{Auth, AuthLayer, Authorize, BearerToken, Call};
pub use content_type::{RequireGrpc, RequireGrpcLayer};
pub use deadline::{Deadline, DeadlineLayer};
pub use limit::{ConcurrencyLimit, ConcurrencyLimitLayer, PermitBody};
#[cfg(feature = "metrics")]
pub use metrics::MetricsBody;
pub use metrics::{GrpcMetrics, GrpcMetricsLayer};
pub use trace::{Trace, TraceLayer, TracedBody};

/// Response futures of the layers, named for the rare user who has to spell a stack's type.
pub mod future {
    pub use super::auth::ResponseFuture as AuthFuture;
    pub use super::content_type::ResponseFuture as RequireGrpcFuture;
    pub use super::deadline::ResponseFuture as DeadlineFuture;
    pub use super::limit::ResponseFuture as ConcurrencyLimitFuture;
    #[cfg(feature = "metrics")]
    pub use super::metrics::ResponseFuture as GrpcMetricsFuture;
    pub use super::trace::ResponseFuture as TraceFuture;
}

use tower_layer::Layer;

use super::Config;

/// The server's request layers, outermost first: the 415 check for non-gRPC requests,
/// [`GrpcMetrics`] (a pass-through without the `metrics` feature; outside the rest so refused
/// calls are counted with their status too), the per-call tracing span, auth (when an
/// [`Authorize`] is set), the deadline, then the concurrency limit.
///
/// The span encloses auth so refused calls are traced too; auth comes before the limit so an
/// unauthenticated client cannot take a concurrency slot; the deadline encloses the wait for a
/// slot, because the client's deadline runs while it waits. A layer that is not configured only
/// passes the call through: its service type stays, its work does not.
#[derive(Debug, Clone)]
pub struct GrpcLayer {
    auth: Option<AuthLayer>,
    deadline: DeadlineLayer,
    limit: ConcurrencyLimitLayer,
}

impl GrpcLayer {
    /// The layers `config` asks for, plus `auth` when given.
    pub fn new(config: &Config, auth: Option<AuthLayer>) -> Self {
        let limit = match config.concurrency_limit {
            Some(max_calls) => ConcurrencyLimitLayer::new(max_calls, config.load_shed),
            None => ConcurrencyLimitLayer::unlimited(),
        };
        GrpcLayer {
            auth,
            deadline: DeadlineLayer::new(config.timeout),
            limit,
        }
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = RequireGrpc<GrpcMetrics<Trace<Auth<Deadline<ConcurrencyLimit<S>>>>>>;

    fn layer(&self, inner: S) -> Self::Service {
        let timed = self.deadline.layer(self.limit.layer(inner));
        let authorized = match &self.auth {
            Some(auth) => auth.layer(timed),
            None => Auth::disabled(timed),
        };
        RequireGrpcLayer.layer(GrpcMetrics::new(TraceLayer.layer(authorized)))
    }
}
