//! A server-wide limit on calls in flight, queueing or shedding the excess.
//!
//! Unlike tower's `ConcurrencyLimit`, a call keeps its slot until its response body ends, so a
//! streaming call counts for as long as it streams, not only until its headers are sent. All clones of
//! one [`ConcurrencyLimitLayer`] share one semaphore, so the limit holds across connections.
//!
//! With load shedding the excess call is answered at once with `RESOURCE_EXHAUSTED` (what tonic's own
//! `load_shed` answers); without it, it waits for a slot (its deadline still runs while it waits).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

/// Applies [`ConcurrencyLimit`] to a service.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    limit: Option<Limit>,
}

#[derive(Debug, Clone)]
struct Limit {
    semaphore: Arc<Semaphore>,
    load_shed: bool,
}

impl ConcurrencyLimitLayer {
    /// At most `max_calls` calls in flight; with `load_shed`, refuse the excess instead of queueing it.
    pub fn new(max_calls: usize, load_shed: bool) -> Self {
        ConcurrencyLimitLayer {
            limit: Some(Limit {
                semaphore: Arc::new(Semaphore::new(max_calls)),
                load_shed,
            }),
        }
    }

    /// A layer that lets every call through (only wraps the body type), for an unconfigured limit.
    pub fn unlimited() -> Self {
        ConcurrencyLimitLayer { limit: None }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        ConcurrencyLimit {
            inner,
            limit: self.limit.clone(),
        }
    }
}

/// A service with a bounded number of calls in flight.
///
/// A call holds its slot until its response body ends, so streaming calls count while they stream.
/// Over the limit, a call is refused with `RESOURCE_EXHAUSTED` (load shedding) or waits for a slot.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    limit: Option<Limit>,
}

impl<S> ConcurrencyLimit<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for ConcurrencyLimit<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send,
    RequestBody: Send + 'static,
    ResponseBody: Default + 'static,
{
    type Response = Response<PermitBody<ResponseBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let Some(limit) = &self.limit else {
            return ResponseFuture::new(State::Called {
                inner: self.inner.call(request),
                permit: None,
            });
        };
        match Arc::clone(&limit.semaphore).try_acquire_owned() {
            Ok(permit) => ResponseFuture::new(State::Called {
                inner: self.inner.call(request),
                permit: Some(permit),
            }),
            Err(_) if limit.load_shed => {
                let status = Status::resource_exhausted("too many calls in flight");
                ResponseFuture::new(State::Refused {
                    response: Some(Ok(status.into_http())),
                })
            }
            Err(_) => {
                // The service readied by `poll_ready` is the one that must take this call; leave a
                // fresh clone behind for the next one (tower's documented pattern).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let semaphore = Arc::clone(&limit.semaphore);
                ResponseFuture::new(State::Queued {
                    inner: Box::pin(async move {
                        // The semaphore is never closed, so acquiring only fails if it were.
                        let permit = semaphore.acquire_owned().await.ok();
                        let response = inner.call(request).await?;
                        Ok(response.map(|body| PermitBody::new(body, permit)))
                    }),
                })
            }
        }
    }
}

pin_project! {
    /// Response future of [`ConcurrencyLimit`].
    pub struct ResponseFuture<F, T> {
        #[pin]
        state: State<F, T>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F, T> {
        // The call got a slot (or there is no limit) and runs.
        Called { #[pin] inner: F, permit: Option<OwnedSemaphorePermit> },
        // The call waits for a slot.
        Queued { inner: BoxFuture<T> },
        // The call was shed.
        Refused { response: Option<T> },
    }
}

impl<F, T> ResponseFuture<F, T> {
    fn new(state: State<F, T>) -> Self {
        ResponseFuture { state }
    }
}

impl<F, T> std::fmt::Debug for ResponseFuture<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E, ResponseBody> Future for ResponseFuture<F, Result<Response<PermitBody<ResponseBody>>, E>>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
    ResponseBody: Default,
{
    type Output = Result<Response<PermitBody<ResponseBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Called { inner, permit } => {
                let response = std::task::ready!(inner.poll(cx))?;
                let permit = permit.take();
                Poll::Ready(Ok(response.map(|body| PermitBody::new(body, permit))))
            }
            StateProjection::Queued { inner } => inner.as_mut().poll(cx),
            StateProjection::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(response),
                None => Poll::Pending,
            },
        }
    }
}

pin_project! {
    /// A response body that holds its call's concurrency slot until it ends.
    #[derive(Debug, Default)]
    pub struct PermitBody<B> {
        #[pin]
        inner: B,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<B> PermitBody<B> {
    fn new(inner: B, permit: Option<OwnedSemaphorePermit>) -> Self {
        PermitBody { inner, permit }
    }
}

impl<B: Body> Body for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            // Free the slot as soon as the call is over, not when hyper gets round to dropping us.
            this.permit.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
