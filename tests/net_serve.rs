//! The serving core under every server: Unix-socket listeners (the accept-error policy has a test
//! binary of its own, `net_accept_errors`, since it lowers the process's descriptor limit).
#![cfg(feature = "ws")]

mod common;

use common::*;
use futures::SinkExt;
use tokio::net::{UnixListener, UnixStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsgrpc::Shutdown;
use wsgrpc::ws::{Message, Server, SessionHandle, handler_fn};

fn echo() -> impl wsgrpc::ws::Handler + Clone {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

/// A socket path in a fresh temporary directory of this test, removed when dropped.
struct SocketPath(std::path::PathBuf);

impl SocketPath {
    fn new(name: &str) -> SocketPath {
        let dir = std::env::temp_dir().join(format!("wsgrpc-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        SocketPath(dir)
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.join("socket")
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits for a server's task to return after its shutdown, and for it to return `Ok`.
async fn stopped(serving: tokio::task::JoinHandle<wsgrpc::Result<()>>) {
    tokio::time::timeout(WAIT, serving)
        .await
        .expect("serve returns")
        .expect("task")
        .expect("ok");
}

/// A WebSocket client over a Unix socket; the URL only names the path and `Host`.
async fn unix_client(path: &std::path::Path) -> tokio_tungstenite::WebSocketStream<UnixStream> {
    let stream = UnixStream::connect(path).await.expect("connect");
    let (client, response) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async("ws://localhost/ws", stream),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(response.status(), 101);
    client
}

async fn unix_round_trip(client: &mut tokio_tungstenite::WebSocketStream<UnixStream>, text: &str) {
    use futures::StreamExt;
    client.send(WsMessage::text(text)).await.expect("send");
    let reply = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("reply in time")
        .expect("open")
        .expect("valid");
    assert_eq!(reply, WsMessage::text(text));
}

#[tokio::test]
async fn websocket_server_serves_a_unix_socket_and_shuts_down() {
    let socket = SocketPath::new("ws");
    let path = socket.path();
    let listener = UnixListener::bind(&path).expect("bind unix socket");
    let server = Server::new(echo());
    let connections = server.connections();
    let shutdown = Shutdown::new();
    let serving = tokio::spawn(server.serve(listener, shutdown.triggered()));

    let mut client = unix_client(&path).await;
    unix_round_trip(&mut client, "over a unix socket").await;
    assert_eq!(connections.count(), 1);

    shutdown.trigger();
    use futures::StreamExt;
    let close = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("close in time");
    match close {
        Some(Ok(WsMessage::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // Polling on answers the close frame, and the server hangs up.
    tokio::time::timeout(WAIT, async { while client.next().await.is_some() {} })
        .await
        .expect("server ends the connection after the close handshake");
    stopped(serving).await;
}

#[cfg(feature = "serve")]
#[tokio::test]
async fn one_port_app_serves_a_unix_socket() {
    let socket = SocketPath::new("app");
    let path = socket.path();
    let listener = UnixListener::bind(&path).expect("bind unix socket");
    let shutdown = Shutdown::new();
    let serving = tokio::spawn(
        wsgrpc::serve::App::new()
            .websocket(echo())
            .serve(listener, shutdown.triggered()),
    );
    let mut client = unix_client(&path).await;
    unix_round_trip(&mut client, "one port, unix socket").await;
    drop(client);
    shutdown.trigger();
    stopped(serving).await;
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn grpc_server_serves_a_unix_socket() {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use hyper_util::rt::TokioIo;
    use tonic::transport::{Endpoint, Uri};
    use wsgrpc::grpc::GrpcServer;
    use wsgrpc::grpc::pb::{HelloRequest, greeter_client::GreeterClient};

    /// Connects tonic's channel to the socket, whatever the URI says.
    #[derive(Clone)]
    struct UnixConnector(std::path::PathBuf);

    impl tower_service::Service<Uri> for UnixConnector {
        type Response = TokioIo<UnixStream>;
        type Error = std::io::Error;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _uri: Uri) -> Self::Future {
            let path = self.0.clone();
            Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(path).await?)) })
        }
    }

    let socket = SocketPath::new("grpc");
    let path = socket.path();
    let listener = UnixListener::bind(&path).expect("bind unix socket");
    let shutdown = Shutdown::new();
    let serving = tokio::spawn(GrpcServer::new().serve(listener, shutdown.triggered()));

    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(UnixConnector(path))
        .await
        .expect("connect over the unix socket");
    let reply = GreeterClient::new(channel)
        .say_hello(HelloRequest {
            name: "unix".to_owned(),
        })
        .await
        .expect("call");
    assert_eq!(reply.into_inner().message, "Hello unix");

    shutdown.trigger();
    stopped(serving).await;
}
