//! wss:// end to end: the client over TLS against the server over TLS, with a self-signed
//! certificate the test makes and trusts.
#![cfg(feature = "tls")]

mod common;

use std::sync::Arc;

use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;
use wsgrpc::client::Client;
use wsgrpc::ws::{Config, Handler, Message, Server, Session};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificate() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    (certified.cert.der().clone(), key.into())
}

struct Collect(mpsc::Sender<String>);

impl Handler for Collect {
    async fn on_message(&self, _session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        let _ = self
            .0
            .send(message.as_text().unwrap_or_default().to_owned())
            .await;
        Ok(())
    }
}

#[tokio::test]
async fn wss_client_talks_to_the_tls_server() {
    let (cert, key) = certificate();
    let server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let (probe, mut closes) = Probe::new();
    let server = Server::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .with_config(Config::default())
        .with_tls(Arc::new(server_config));
    let port = server.local_addr().port();
    let handle = server.handle();
    tokio::spawn(server.serve(probe));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("trust the test certificate");
    let client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (seen, mut received) = mpsc::channel(16);
    let client = Client::builder(format!("wss://localhost:{port}/ws"))
        .tls_config(Arc::new(client_config))
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
