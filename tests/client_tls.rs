//! wss:// end to end: the client over TLS against the server over TLS, with a self-signed
//! certificate the test makes and trusts.

#![cfg(all(feature = "client", feature = "tls"))]

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use common::*;
use tls_common::{Collect, TestCertificate};
use tokio::sync::mpsc;
use wsgrpc::client::Client;
use wsgrpc::ws::{Config, Server};

#[tokio::test]
async fn wss_client_talks_to_the_tls_server() {
    let certificate = TestCertificate::localhost();
    let (probe, mut closes) = Probe::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("bound address").port();
    let server = Server::new(probe)
        .config(Config::default())
        .tls(certificate.server_config());
    let (handle, _task) = spawn_server(server, listener);

    let (seen, mut received) = mpsc::channel(16);
    let client = Client::builder(format!("wss://localhost:{port}/ws"))
        .tls_config(certificate.client_config())
        .connect(Collect(seen))
        .await
        .expect("wss connect");
    client.send("over tls").await.expect("send");
    let echoed = tokio::time::timeout(WAIT, received.recv())
        .await
        .expect("in time");
    assert_eq!(echoed.as_deref(), Some("over tls"));

    // A client that does not trust the certificate is refused by TLS, not by HTTP.
    let untrusting = Client::connect(
        format!("wss://localhost:{port}/ws"),
        Collect(mpsc::channel(1).0),
    )
    .await;
    assert!(
        matches!(untrusting, Err(wsgrpc::Error::Io(_))),
        "{untrusting:?}"
    );

    client
        .close(wsgrpc::ws::CloseCode::Normal, "bye")
        .await
        .expect("close");
    assert_eq!(next_close(&mut closes).await.code_number(), 1000);
    handle.shutdown();
}
