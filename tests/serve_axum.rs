//! The axum adapter: a wsgrpc handler mounted on an axum route and the Greeter merged beside it,
//! served by `axum::serve`; refusals from `on_upgrade` become responses; the connection set gives
//! the upgraded WebSockets a graceful shutdown.

#![cfg(feature = "axum")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{WAIT, connect, expect_close, round_trip};
use http::StatusCode;
use tokio::net::TcpListener;
use tonic::transport::Endpoint;
use wsgrpc::grpc::GrpcServer;
use wsgrpc::grpc::pb::{HelloRequest, greeter_client::GreeterClient};
use wsgrpc::serve::axum::{WebSocket, grpc_router, websocket};
use wsgrpc::ws::{Message, SessionHandle, handler_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_and_greeter_beside_an_axum_route() {
    let echo = handler_fn(|session: SessionHandle, message: Message| async move {
        session.send(message).await
    });
    // No guard: the same-origin check is the default of the axum adapter too.
    let endpoint = WebSocket::new(echo);
    let connections = endpoint.connections().clone();
    let app =
        axum::Router::new()
            .route("/hello", axum::routing::get(|| async { "plain axum" }))
            .route("/ws", endpoint.into_route())
            .route(
                "/other",
                websocket(handler_fn(
                    |session: SessionHandle, _message: Message| async move {
                        session.send("other").await
                    },
                )),
            )
            .merge(grpc_router(
                GrpcServer::new().into_parts().await.expect("parts"),
            ));

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown_connections = connections.clone();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
            shutdown_connections.shutdown(Duration::from_secs(5)).await;
        })
        .into_future(),
    );

    // The wsgrpc handler on its route, with the default origin policy.
    let mut client = connect(&format!("ws://{addr}/ws")).await;
    round_trip(&mut client, "through axum").await;
    let request = common::request_with(
        &format!("ws://{addr}/ws"),
        &[("origin", "https://evil.example")],
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("expected 403 from the origin check, got {other:?}"),
    }
    let mut other = connect(&format!("ws://{addr}/other")).await;
    use futures::SinkExt;
    other
        .send(tokio_tungstenite::tungstenite::Message::text("x"))
        .await
        .expect("send");
    assert_eq!(common::next_text(&mut other).await, "other");
    drop(other);

    // The Greeter beside it, over h2c on the same port.
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let reply = GreeterClient::new(channel)
        .say_hello(HelloRequest {
            name: "axum".into(),
        })
        .await
        .expect("SayHello");
    assert_eq!(reply.into_inner().message, "Hello axum");

    // axum's shutdown plus the connection set: the WebSocket gets 1001.
    let _ = stop.send(());
    let frame = expect_close(&mut client).await;
    assert_eq!(u16::from(frame.code), 1001);
    tokio::time::timeout(WAIT, server)
        .await
        .expect("axum stops in time")
        .expect("task")
        .expect("serve");
}
