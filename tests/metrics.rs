//! The metrics of `wsgrpc::metrics` move as traffic goes by: real servers on 127.0.0.1:0, real
//! clients, and the Prometheus recorder of `metrics-exporter-prometheus` installed once for this
//! test binary. Every assertion compares the rendered text before and after the traffic.
//!
//! The recorder is global to the process and the figures are too, so the tests take turns
//! (`SERIAL`): a counter moved by another test running at the same time would spoil the deltas.
#![cfg(all(feature = "metrics", feature = "serve"))]

mod common;
#[path = "common/grpc.rs"]
mod grpc_common;
#[path = "common/serve.rs"]
mod serve_common;

use std::sync::OnceLock;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, MutexGuard};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use wsgrpc::grpc::GrpcServer;
use wsgrpc::grpc::pb::HelloRequest;
use wsgrpc::serve::{App, Assets};
use wsgrpc::ws::{
    CloseCode, Config, Handler, Hub, Message, Rejection, Session, SessionHandle, Upgrade,
    handler_fn,
};

use common::WAIT;

/// The process's one recorder, installed before any test records anything.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .with_recommended_naming(true)
            .set_buckets(wsgrpc::metrics::DURATION_BUCKETS)
            .expect("buckets")
            .install_recorder()
            .expect("the only recorder of this test binary");
        wsgrpc::metrics::describe();
        handle
    })
}

/// One test at a time (see the module docs), with the recorder installed.
async fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::const_new(());
    recorder();
    SERIAL.lock().await
}

/// The rendered Prometheus text.
fn render() -> String {
    recorder().render()
}

/// The sum of the samples of `name` whose labels include every `(label, value)` of `labels`, in
/// the Prometheus text `text`; 0 when there is none yet.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, series_labels) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let matches = labels.iter().all(|(label, wanted)| {
                series_labels
                    .split(',')
                    .any(|pair| pair == format!("{label}=\"{wanted}\""))
            });
            matches.then(|| value.parse::<f64>().expect("a number"))
        })
        .sum()
}

/// How far `name` (with `labels`) moved from `before` to now.
fn moved(before: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(&render(), name, labels) - sample(before, name, labels)
}

const ACTIVE: &str = "websocket_server_active_connections";
const CONNECTIONS: &str = "websocket_server_connections_total";
const MESSAGES: &str = "websocket_server_messages_total";
const IO: &str = "websocket_server_io_bytes_total";
const CLOSES: &str = "websocket_server_closes_total";
const REFUSALS: &str = "websocket_server_handshake_refusals_total";
const QUEUE_FULL: &str = "websocket_server_queue_full_total";
const DELIVERIES: &str = "websocket_hub_deliveries_total";
const SLOW_CONSUMERS: &str = "websocket_hub_slow_consumers_total";
const RPC_COUNT: &str = "rpc_server_duration_seconds_count";
const RPC_ACTIVE: &str = "rpc_server_active_requests";
const APP_REQUESTS: &str = "wsgrpc_app_requests_total";

const RECEIVE: (&str, &str) = ("network_io_direction", "receive");
const TRANSMIT: (&str, &str) = ("network_io_direction", "transmit");

fn echo() -> impl Handler {
    handler_fn(|session: SessionHandle, message: Message| async move {
        if message.as_text() == Some("close with 4000") {
            return session.close(CloseCode::from(4000), "asked").await;
        }
        session.send(message).await
    })
}

#[tokio::test]
async fn a_websocket_echo_moves_connections_messages_bytes_and_closes() {
    let _turn = serial().await;
    let server = common::start(echo(), Config::default()).await;
    let before = render();

    let mut client = common::connect(&server.url("/echo")).await;
    server.wait_connections(1).await;
    assert_eq!(moved(&before, ACTIVE, &[]), 1.0, "one connection open");
    assert_eq!(moved(&before, CONNECTIONS, &[]), 1.0);

    let texts = ["a", "hello", "a longer message of forty-two bytes, say.."];
    for text in texts {
        common::round_trip(&mut client, text).await;
    }
    client
        .send(WsMessage::binary(vec![7u8; 1000]))
        .await
        .expect("send binary");
    assert_eq!(
        common::next_data(&mut client).await,
        WsMessage::binary(vec![7u8; 1000])
    );
    let bytes: usize = texts.iter().map(|text| text.len()).sum::<usize>() + 1000;
    assert_eq!(moved(&before, MESSAGES, &[RECEIVE]), 4.0);
    assert_eq!(moved(&before, MESSAGES, &[TRANSMIT]), 4.0);
    assert_eq!(moved(&before, IO, &[RECEIVE]), bytes as f64);
    assert_eq!(moved(&before, IO, &[TRANSMIT]), bytes as f64);

    // The client closes with an application code: counted as the peer's.
    client
        .close(Some(CloseFrame {
            code: WsCloseCode::from(4001),
            reason: "done".into(),
        }))
        .await
        .expect("close");
    let _ = tokio::time::timeout(WAIT, async { while client.next().await.is_some() {} }).await;
    server.wait_connections(0).await;
    let code = ("websocket_close_code", "4001");
    assert_eq!(
        moved(
            &before,
            CLOSES,
            &[code, ("websocket_close_initiator", "peer")]
        ),
        1.0
    );
    assert_eq!(moved(&before, ACTIVE, &[]), 0.0, "closed again");

    // The server closes with 4000: counted as local.
    let mut client = common::connect(&server.url("/echo")).await;
    client
        .send(WsMessage::text("close with 4000"))
        .await
        .expect("send");
    let frame = common::expect_close(&mut client).await;
    assert_eq!(u16::from(frame.code), 4000);
    server.wait_connections(0).await;
    let code = ("websocket_close_code", "4000");
    assert_eq!(
        moved(
            &before,
            CLOSES,
            &[code, ("websocket_close_initiator", "local")]
        ),
        1.0
    );
    assert_eq!(moved(&before, CONNECTIONS, &[]), 2.0);
}

#[tokio::test]
async fn refused_handshakes_are_counted_by_status() {
    let _turn = serial().await;
    let server = common::start(echo(), Config::default()).await;
    let before = render();

    // No Sec-WebSocket-Key: RFC 6455 section 4.2.1 makes that a 400.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = common::read_http_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 400"), "got {head}");
    let status = ("http_response_status_code", "400");
    assert_eq!(moved(&before, REFUSALS, &[status]), 1.0);
    assert_eq!(moved(&before, CONNECTIONS, &[]), 0.0);
}

/// Refuses every upgrade with 403, as an auth guard would.
struct Forbidden;

impl Handler for Forbidden {
    async fn on_upgrade(&self, _upgrade: &mut Upgrade) -> Result<(), Rejection> {
        Err(Rejection::new(http::StatusCode::FORBIDDEN, "no\n"))
    }
}

#[tokio::test]
async fn refusals_on_the_one_port_app_are_counted_too() {
    let _turn = serial().await;
    let app = serve_common::TestApp::start(App::new().websocket(Forbidden)).await;
    let before = render();
    let url = format!("ws://{}/anything", app.addr);
    let request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .expect("request");
    let (status, _, _) = common::refused(request).await;
    assert_eq!(status, 403);
    let status = ("http_response_status_code", "403");
    assert_eq!(moved(&before, REFUSALS, &[status]), 1.0);
    assert_eq!(
        moved(&before, APP_REQUESTS, &[("protocol", "websocket")]),
        1.0
    );
}

/// Joins every connection to one hub.
struct Members {
    hub: Hub,
}

impl Handler for Members {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        self.hub.add(&session.handle());
        Ok(())
    }
}

#[tokio::test]
async fn a_member_that_stops_reading_is_a_queue_full_and_a_slow_consumer() {
    let _turn = serial().await;
    let hub = Hub::new();
    let config = Config::default().outgoing_queue(4);
    let server = common::start(Members { hub: hub.clone() }, config).await;
    // Connected, and never read from again.
    let silent = common::connect(&server.url("/")).await;
    server.wait_connections(1).await;
    let before = render();

    // Broadcast until the member's socket buffers and then its queue are full and the hub drops
    // it; each round yields so its connection can write what fits.
    let payload = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut delivered = 0;
    let dropped = tokio::time::timeout(WAIT, async {
        loop {
            let delivery = hub.broadcast(Message::Binary(payload.clone()));
            delivered += delivery.delivered;
            if delivery.dropped > 0 {
                return delivery.dropped;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the silent member is dropped in time");
    assert_eq!(dropped, 1);
    assert!(delivered >= 4, "its queue filled first ({delivered})");
    assert_eq!(moved(&before, DELIVERIES, &[]), delivered as f64);
    assert_eq!(moved(&before, QUEUE_FULL, &[]), 1.0);
    assert_eq!(moved(&before, SLOW_CONSUMERS, &[]), 1.0);
    // Gone, so the server need not wait out its close timeout for a close reply.
    drop(silent);
    server.wait_connections(0).await;
    let code = ("websocket_close_code", "1008");
    assert_eq!(moved(&before, CLOSES, &[code]), 1.0);
}

#[tokio::test]
async fn grpc_calls_are_counted_by_method_and_status() {
    let _turn = serial().await;
    let server = grpc_common::TestServer::start(GrpcServer::new()).await;
    let mut client = server.client().await;
    let before = render();

    let reply = client
        .say_hello(HelloRequest {
            name: "metrics".into(),
        })
        .await
        .expect("OK");
    assert!(reply.into_inner().message.contains("metrics"));
    let status = client
        .say_hello(HelloRequest {
            name: String::new(),
        })
        .await
        .expect_err("an empty name is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // A streaming reply: the status comes in the trailers after the last message.
    let mut stream = client
        .say_hello_stream_reply(HelloRequest {
            name: "stream".into(),
        })
        .await
        .expect("stream starts")
        .into_inner();
    let mut replies = 0;
    while let Some(reply) = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("reply in time")
        .expect("reply")
    {
        assert!(reply.message.contains("stream"));
        replies += 1;
    }
    assert!(replies > 0);

    let greeter = [
        ("rpc_system", "grpc"),
        ("rpc_service", "helloworld.Greeter"),
    ];
    let labels = |method, code| {
        let mut labels = greeter.to_vec();
        labels.push(("rpc_method", method));
        labels.push(("rpc_grpc_status_code", code));
        labels
    };
    assert_eq!(moved(&before, RPC_COUNT, &labels("SayHello", "0")), 1.0);
    assert_eq!(moved(&before, RPC_COUNT, &labels("SayHello", "3")), 1.0);
    assert_eq!(
        moved(&before, RPC_COUNT, &labels("SayHelloStreamReply", "0")),
        1.0
    );
    assert_eq!(
        moved(&before, RPC_ACTIVE, &[]),
        0.0,
        "no call left in flight"
    );

    // A method the server does not have: one `_OTHER` series, not one per path.
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/no.Such/Method");
    let status = grpc
        .unary::<HelloRequest, wsgrpc::grpc::pb::HelloReply, _>(
            tonic::Request::new(HelloRequest { name: "x".into() }),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let other = [
        ("rpc_service", "_OTHER"),
        ("rpc_method", "_OTHER"),
        ("rpc_grpc_status_code", "12"),
    ];
    assert_eq!(moved(&before, RPC_COUNT, &other), 1.0);
    assert!(!render().contains("no.Such"));
}

#[tokio::test]
async fn the_app_serves_prometheus_text_at_metrics_with_every_protocol() {
    let _turn = serial().await;
    let handle = recorder().clone();
    let app = App::new()
        .websocket(echo())
        .grpc(GrpcServer::new().into_parts().await.expect("grpc parts"));
    #[cfg(feature = "grpc-web")]
    let app = app.grpc_web(wsgrpc::serve::Cors::default());
    let app = app.assets(Assets::new().generated(
        "/metrics",
        "text/plain; version=0.0.4",
        move || handle.render().into(),
    ));
    let app = serve_common::TestApp::start(app).await;
    let before = render();

    let mut client = common::connect(&format!("ws://{}/chat", app.addr)).await;
    common::round_trip(&mut client, "over one port").await;
    common::close_client(&mut client).await;
    app.wait_websockets(0).await;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut greeter = wsgrpc::grpc::pb::greeter_client::GreeterClient::new(channel);
    greeter
        .say_hello(HelloRequest { name: "app".into() })
        .await
        .expect("OK");
    // The same call from a browser page, as gRPC-Web.
    #[cfg(feature = "grpc-web")]
    {
        let response = serve_common::http1(
            app.addr,
            serve_common::grpc_web_hello(app.addr, "web", None),
        )
        .await;
        let (message, trailers) = serve_common::parse_grpc_web(response.body());
        assert!(message.expect("a reply").contains("web"));
        assert!(trailers.contains("grpc-status:0"), "{trailers}");
    }
    let grpc_web_calls = if cfg!(feature = "grpc-web") { 1.0 } else { 0.0 };

    let request = http::Request::get("/metrics")
        .header("host", app.addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = serve_common::http1(app.addr, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let page = String::from_utf8(response.body().to_vec()).expect("utf-8");
    for name in [
        CONNECTIONS,
        MESSAGES,
        IO,
        CLOSES,
        RPC_COUNT,
        "rpc_server_duration_seconds_bucket",
        APP_REQUESTS,
    ] {
        assert!(page.contains(name), "{name} missing from /metrics:\n{page}");
    }
    for protocol in ["websocket", "grpc", "http"] {
        let moved = sample(&page, APP_REQUESTS, &[("protocol", protocol)])
            - sample(&before, APP_REQUESTS, &[("protocol", protocol)]);
        assert_eq!(moved, 1.0, "{protocol} requests");
    }
    let web = ("protocol", "grpc-web");
    assert_eq!(
        sample(&page, APP_REQUESTS, &[web]) - sample(&before, APP_REQUESTS, &[web]),
        grpc_web_calls
    );
    // Native and gRPC-Web calls alike go through the metrics layer.
    let hello = [("rpc_method", "SayHello"), ("rpc_grpc_status_code", "0")];
    assert_eq!(
        sample(&page, RPC_COUNT, &hello) - sample(&before, RPC_COUNT, &hello),
        1.0 + grpc_web_calls
    );
    assert_eq!(
        sample(&page, MESSAGES, &[RECEIVE]) - sample(&before, MESSAGES, &[RECEIVE]),
        1.0
    );
}
