//! TLS on the one port (feature `tls`): `wss://` and gRPC over TLS against the same listener; a
//! cleartext client is not served.
#![cfg(feature = "tls")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::sync::Arc;

use grpc_common::within;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use wsgrpc::client::Client;
use wsgrpc::grpc::GrpcServer;
use wsgrpc::grpc::pb::{HelloRequest, greeter_client::GreeterClient};
use wsgrpc::serve::{App, Cors};
use wsgrpc::ws::{Handler, Message, Session, SessionHandle, handler_fn};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_grpc_over_tls_on_the_same_port() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert_pem = certified.cert.pem();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key: PrivateKeyDer<'static> =
        PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()).into();
    let server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");

    let echo = handler_fn(|session: SessionHandle, message: Message| async move {
        session.send(message).await
    });
    let server = App::new()
        .websocket(echo)
        .grpc(GrpcServer::new().into_parts().await.expect("parts"))
        .grpc_web(Cors::default())
        .tls(Arc::new(server_config))
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = server.local_addr().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_with_shutdown(async {
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
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("trust the test certificate");
    let client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (seen, mut received) = mpsc::channel(4);
    let client = within(
        "wss connect",
        Client::builder(format!("wss://localhost:{port}/ws"))
            .tls_config(Arc::new(client_config))
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
