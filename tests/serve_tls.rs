//! TLS on the one port (feature `tls`): `wss://` and gRPC over TLS against the same listener; a
//! cleartext client is not served.

#![cfg(all(feature = "grpc-web", feature = "tls", feature = "client"))]

#[path = "common/grpc.rs"]
mod grpc_common;
#[path = "common/tls.rs"]
mod tls_common;

use grpc_common::within;
use tls_common::{Collect, TestCertificate};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use wsgrpc::client::Client;
use wsgrpc::grpc::GrpcServer;
use wsgrpc::grpc::pb::{HelloRequest, greeter_client::GreeterClient};
use wsgrpc::serve::{App, Cors};
use wsgrpc::ws::{Message, SessionHandle, handler_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_grpc_over_tls_on_the_same_port() {
    let certificate = TestCertificate::localhost();
    let cert_pem = certificate.pem.clone();

    let echo = handler_fn(|session: SessionHandle, message: Message| async move {
        session.send(message).await
    });
    let app = App::new()
        .websocket(echo)
        .grpc(GrpcServer::new().into_parts().await.expect("parts"))
        .grpc_web(Cors::default())
        .tls(certificate.server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("bound address").port();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));

    // gRPC over TLS (ALPN h2).
    let endpoint = Endpoint::from_shared(format!("https://localhost:{port}"))
        .expect("uri")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&cert_pem))
                .domain_name("localhost"),
        )
        .expect("tls config");
    let channel = within("tls connect", endpoint.connect())
        .await
        .expect("connect");
    let reply = within(
        "SayHello",
        GreeterClient::new(channel).say_hello(HelloRequest { name: "tls".into() }),
    )
    .await
    .expect("SayHello");
    assert_eq!(reply.into_inner().message, "Hello tls");

    // wss:// on the same port (ALPN http/1.1), at the same time as the channel above.
    let (seen, mut received) = mpsc::channel(4);
    let client = within(
        "wss connect",
        Client::builder(format!("wss://localhost:{port}/ws"))
            .tls_config(certificate.client_config())
            .connect(Collect(seen)),
    )
    .await
    .expect("wss connect");
    client.send("over wss").await.expect("send");
    assert_eq!(
        within("echo", received.recv()).await.as_deref(),
        Some("over wss")
    );

    // A cleartext client gets no answer from a TLS port.
    let plain = Endpoint::from_shared(format!("http://localhost:{port}")).expect("uri");
    let result = within("cleartext attempt", async {
        let channel = plain.connect().await?;
        GreeterClient::new(channel)
            .say_hello(HelloRequest { name: "x".into() })
            .await
            .map_err(Into::into)
    })
    .await;
    let result: Result<_, Box<dyn std::error::Error + Send + Sync>> = result;
    assert!(result.is_err(), "{result:?}");

    let _ = stop.send(());
    within("shutdown", task)
        .await
        .expect("task")
        .expect("clean shutdown");
}
