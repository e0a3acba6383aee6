//! One port for everything: a web page, a chat over WebSocket, the Greeter over gRPC-Web for the
//! page and over native gRPC for other clients, all from one listener; with the `metrics` feature,
//! Prometheus text at `/metrics` on the same port.
//!
//! To build it in a crate of your own, copy this file to `src/main.rs`, `index.html` next to it,
//! and put this in your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["grpc-web", "rate-limit"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "net"] }
//! tracing-subscriber = { version = "0.3.19", features = ["env-filter"] }
//! # for `--tls` only:
//! rcgen = { version = "0.14", optional = true }
//! rustls = { version = "0.23", default-features = false, features = ["ring", "std"], optional = true }
//! # for `/metrics` only (no HTTP listener of its own: the app serves its text):
//! metrics-exporter-prometheus = { version = "0.18", default-features = false, optional = true }
//!
//! [features]
//! tls = ["wsgrpc/tls", "dep:rcgen", "dep:rustls"]
//! metrics = ["wsgrpc/metrics", "dep:metrics-exporter-prometheus"]
//! ```
//!
//! ```text
//! cargo run --example app --features grpc-web  # listening on http://127.0.0.1:8080
//! # open the URL in a browser (two tabs to chat); native gRPC on the same port:
//! cargo run --example greeter_client --features grpc -- http://127.0.0.1:8080 world
//! cargo run --example ws_client --features client -- ws://127.0.0.1:8080/chat "hello from a terminal"
//! # TLS with a self-signed certificate generated at start (https://, wss://, gRPC over TLS):
//! cargo run --example app --features grpc-web,tls -- --tls
//! # Prometheus text on the same port (connections, messages, closes, gRPC calls by method):
//! cargo run --example app --all-features
//! curl http://127.0.0.1:8080/metrics
//! ```
//!
//! Another address: first argument or `ADDR` (port 0 picks a free port; the printed URL has the
//! real one). Ctrl-C shuts down gracefully: health turns NOT_SERVING, chats get close 1001, calls
//! in flight finish.

use std::time::Duration;

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use wsgrpc::grpc::GrpcServer;
use wsgrpc::serve::{App, Assets, Cors};
use wsgrpc::ws::layer::RateLimitLayer;
use wsgrpc::ws::{CloseReason, Config, Handler, HandlerBuilder, Hub, Message, Router, Session};

const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// The page, compiled into the binary.
const INDEX_HTML: &str = include_str!("index.html");

/// Everyone connected to `/chat` gets every line anyone sends.
struct Chat {
    hub: Hub,
}

impl Handler for Chat {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        self.hub.add(&session.handle());
        Ok(())
    }

    async fn on_message(&self, _session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        // Shared, not copied: every member's queue holds the same bytes. Waits while a queue is
        // full, so a burst is paced by the members instead of closing them.
        if message.as_text().is_some() {
            self.hub.publish(message).await;
        }
        Ok(())
    }

    async fn on_close(&self, session: &mut Session, _reason: CloseReason) {
        self.hub.remove(session.id());
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let mut args = std::env::args().skip(1).collect::<Vec<_>>();
    let tls = args.iter().any(|arg| arg == "--tls");
    args.retain(|arg| arg != "--tls");
    let addr = args
        .first()
        .cloned()
        .or_else(|| std::env::var("ADDR").ok())
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());

    // Other sites' pages get 403: the same-origin check is on by default (`ws::Config`).
    // Before anything is served: the per-message counters bind to the recorder on first use.
    let assets = Assets::new().file("/", "text/html; charset=utf-8", INDEX_HTML);
    #[cfg(feature = "metrics")]
    let assets = with_metrics(assets)?;

    let chat = HandlerBuilder::new()
        .layer(RateLimitLayer::new(20, Duration::from_secs(1)))
        .handler(Chat { hub: Hub::new() });
    let app = App::new()
        .websocket(Router::new().route("/chat", chat))
        .websocket_config(Config::default().max_message_size(4 << 10))
        .grpc(GrpcServer::new().into_parts().await?)
        .grpc_web(Cors::default())
        .assets(assets);
    let scheme = if tls { "https" } else { "http" };
    let (app, certificate) = if tls { with_tls(app)? } else { (app, None) };

    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {scheme}://{}", listener.local_addr()?);
    if let Some(path) = certificate {
        let port = listener.local_addr()?.port();
        println!("self-signed certificate written to {}", path.display());
        println!(
            "  curl:     curl --cacert {} https://localhost:{port}/",
            path.display()
        );
        println!(
            "  browser:  open https://localhost:{port}/ and accept the warning once, or import the file as an authority"
        );
        println!(
            "  system:   cp {} /usr/local/share/ca-certificates/wsgrpc-app.crt && update-ca-certificates",
            path.display()
        );
    }
    app.serve(listener, wsgrpc::shutdown_signal()).await?;
    Ok(())
}

/// Installs the Prometheus recorder and serves its text at `/metrics`: every figure
/// `wsgrpc::metrics` lists, gRPC durations as histograms with OpenTelemetry's buckets.
#[cfg(feature = "metrics")]
fn with_metrics(assets: Assets) -> Result<Assets, Box<dyn std::error::Error>> {
    use metrics_exporter_prometheus::PrometheusBuilder;

    let handle = PrometheusBuilder::new()
        // `_total` on counters, units in names: `rpc_server_duration_seconds`.
        .with_recommended_naming(true)
        .set_buckets(wsgrpc::metrics::DURATION_BUCKETS)?
        .install_recorder()?;
    wsgrpc::metrics::describe();
    // Without its own listener the recorder relies on its user for upkeep (folding histogram
    // samples in): every few seconds, so memory stays bounded however rarely it is scraped.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(assets.generated(
        "/metrics",
        "text/plain; version=0.0.4; charset=utf-8",
        move || handle.render().into(),
    ))
}

/// A certificate for localhost and 127.0.0.1, made now and written where a client can trust it;
/// returns the app serving it and the certificate's path.
#[cfg(feature = "tls")]
fn with_tls<H: Handler>(
    app: App<H>,
) -> Result<(App<H>, Option<std::path::PathBuf>), Box<dyn std::error::Error>> {
    use std::sync::Arc;

    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let path = std::env::temp_dir().join("wsgrpc-app-cert.pem");
    std::fs::write(&path, certified.cert.pem())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)?;
    Ok((app.tls(Arc::new(config)), Some(path)))
}

#[cfg(not(feature = "tls"))]
fn with_tls<H: Handler>(
    _app: App<H>,
) -> Result<(App<H>, Option<std::path::PathBuf>), Box<dyn std::error::Error>> {
    Err(
        "--tls needs the tls feature: cargo run --example app --features grpc-web,tls -- --tls"
            .into(),
    )
}
