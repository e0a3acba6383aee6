//! TLS (feature `tls`): a tonic client trusting the test CA gets its greeting; a cleartext client
//! gets nothing.

#![cfg(all(feature = "grpc", feature = "tls"))]

#[path = "common/grpc.rs"]
mod grpc_common;

use grpc_common::within;
use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use wsgrpc::grpc::{
    GrpcServer,
    pb::{HelloRequest, greeter_client::GreeterClient},
};
use wsgrpc::net::TlsConfig;

#[tokio::test]
async fn greets_over_tls_and_refuses_cleartext() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let tls = TlsConfig::from_pem(&cert_pem, certified.signing_key.serialize_pem()).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(GrpcServer::new().tls(tls).serve(listener, async {
        let _ = stopped.await;
    }));

    let client_tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(client_tls)
        .unwrap();
    let channel = within("tls connect", endpoint.connect()).await.unwrap();
    let mut client = GreeterClient::new(channel);
    let reply = within(
        "SayHello",
        client.say_hello(HelloRequest {
            name: "world".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(reply.into_inner().message, "Hello world");

    // A cleartext HTTP/2 client fails the handshake instead of being served.
    let plain = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let result = within("cleartext attempt", async {
        let channel = plain.connect().await?;
        GreeterClient::new(channel)
            .say_hello(HelloRequest {
                name: "world".into(),
            })
            .await
            .map_err(Into::into)
    })
    .await;
    let result: Result<_, Box<dyn std::error::Error + Send + Sync>> = result;
    assert!(
        result.is_err(),
        "cleartext call succeeded against a TLS server"
    );

    let _ = stop.send(());
    within("server stop", server).await.unwrap().unwrap();
}

#[test]
fn rejects_pem_without_a_certificate() {
    let error = TlsConfig::from_pem("", "").unwrap_err();
    assert!(matches!(error, wsgrpc::Error::Tls(_)), "{error:?}");
}
