//! `.layer(L)` wraps every service (the Greeter, health, reflection, the router's fallback) in
//! any tower layer, and a layer's error becomes the call's gRPC status.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use grpc_common::{TestServer, within};
use tonic::{Code, Status};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower_layer::Layer;
use tower_service::Service;
use wsgrpc::grpc::{GrpcServer, pb::HelloRequest};

/// Counts the calls it sees and marks their responses with `x-layered: yes`; refuses calls to
/// `refuse_path` with an error (PERMISSION_DENIED in its chain).
#[derive(Clone)]
struct Marker {
    calls: Arc<AtomicUsize>,
    refuse_path: &'static str,
}

impl<S> Layer<S> for Marker {
    type Service = Marked<S>;

    fn layer(&self, inner: S) -> Marked<S> {
        Marked {
            inner,
            marker: self.clone(),
        }
    }
}

#[derive(Clone)]
struct Marked<S> {
    inner: S,
    marker: Marker,
}

impl<S, B, R> Service<http::Request<B>> for Marked<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = BoxFuture<'static, Result<http::Response<R>, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.marker.calls.fetch_add(1, Ordering::SeqCst);
        if request.uri().path() == self.marker.refuse_path {
            return Box::pin(async { Err(Status::permission_denied("refused by a layer").into()) });
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await.map_err(Into::into)?;
            response
                .headers_mut()
                .insert("x-layered", http::HeaderValue::from_static("yes"));
            Ok(response)
        })
    }
}

#[tokio::test]
async fn a_layer_wraps_every_service_and_its_errors_become_statuses() {
    let calls = Arc::new(AtomicUsize::new(0));
    let marker = Marker {
        calls: calls.clone(),
        refuse_path: "/helloworld.Greeter/SayHelloStreamReply",
    };
    let server = TestServer::start(GrpcServer::new().layer(marker)).await;

    let mut greeter = server.client().await;
    let reply = within(
        "SayHello",
        greeter.say_hello(HelloRequest {
            name: "layer".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(reply.metadata().get("x-layered").unwrap(), "yes");

    let mut health = HealthClient::new(server.channel().await);
    let checked = within(
        "Check",
        health.check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(checked.metadata().get("x-layered").unwrap(), "yes");

    let refused = within(
        "SayHelloStreamReply",
        greeter.say_hello_stream_reply(HelloRequest { name: "no".into() }),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(refused.message(), "refused by a layer");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // An unknown method is answered by the router's fallback, which is wrapped too.
    let unknown = grpc_common::raw_unary(
        server.channel().await,
        "/no.such.Service/Method",
        bytes::Bytes::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::Unimplemented);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}
