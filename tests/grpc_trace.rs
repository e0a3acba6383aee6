//! Every call runs in a `grpc.call` span that ends with its service, method, status and latency.
//!
//! A file of its own with one test: the capturing subscriber is the process-wide default, so the
//! server's tasks report to it whichever thread they run on, and no other test's calls interfere
//! with tracing's per-callsite interest cache.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use grpc_common::{TestServer, within};
use tokio::sync::watch;
use tonic::{Code, Request};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tracing::{
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{layer::SubscriberExt, registry::LookupSpan};
use wsgrpc::grpc::{GrpcServer, pb::HelloRequest};

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
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .expect("the only subscriber of this test binary");

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
