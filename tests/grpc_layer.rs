//! `.layer(L)` wraps every service (the Greeter, health, reflection) in any tower layer, and a
//! layer's error becomes the call's gRPC status; every call runs in a `grpc.call` span that ends
//! with its service, method, status and latency.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use grpc_common::{TestServer, within};
use tokio::sync::watch;
use tonic::{Code, Request, Status};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{layer::SubscriberExt, registry::LookupSpan};
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

/// The fields of one closed `grpc.call` span.
type Fields = HashMap<String, String>;

/// Collects the fields of every `grpc.call` span and publishes the list when one closes.
#[derive(Clone)]
struct Capture {
    closed: Arc<Mutex<Vec<Fields>>>,
    count: watch::Sender<usize>,
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attributes: &Attributes<'_>,
        id: &Id,
        context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attributes.metadata().name() != "grpc.call" {
            return;
        }
        let mut fields = Fields::new();
        attributes.record(&mut Visitor(&mut fields));
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(
        &self,
        id: &Id,
        values: &Record<'_>,
        context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = context.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(&mut Visitor(fields));
        }
    }

    fn on_close(&self, id: Id, context: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = context.span(&id)
            && let Some(fields) = span.extensions_mut().remove::<Fields>()
        {
            let mut closed = self.closed.lock().unwrap();
            closed.push(fields);
            self.count.send_replace(closed.len());
        }
    }
}

#[tokio::test]
async fn every_call_gets_a_span_with_service_method_status_and_latency() {
    let capture = Capture {
        closed: Arc::default(),
        count: watch::channel(0).0,
    };
    let mut count = capture.count.subscribe();
    // The test runtime has one thread, so the server's tasks see this subscriber too.
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));

    let server = TestServer::start(GrpcServer::new()).await;
    let mut greeter = server.client().await;
    within(
        "SayHello",
        greeter.say_hello(HelloRequest {
            name: "span".into(),
        }),
    )
    .await
    .unwrap();
    let mut health = HealthClient::new(server.channel().await);
    let unknown = within(
        "Check",
        health.check(Request::new(HealthCheckRequest {
            service: "no.such.Service".into(),
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    within("two spans to close", count.wait_for(|closed| *closed >= 2))
        .await
        .unwrap();
    let closed = capture.closed.lock().unwrap().clone();
    let find = |method: &str| {
        closed
            .iter()
            .find(|fields| fields.get("rpc.method").map(String::as_str) == Some(method))
            .unwrap_or_else(|| panic!("no span for {method}: {closed:?}"))
            .clone()
    };
    let hello = find("SayHello");
    assert_eq!(hello["rpc.service"], "helloworld.Greeter");
    assert_eq!(hello["rpc.grpc.status_code"], "0");
    let latency: u64 = hello["latency_us"]
        .parse()
        .expect("latency in microseconds");
    assert!(latency > 0 && latency < 10_000_000, "{latency}");
    let check = find("Check");
    assert_eq!(check["rpc.service"], "grpc.health.v1.Health");
    assert_eq!(
        check["rpc.grpc.status_code"],
        (Code::NotFound as i32).to_string()
    );
}
