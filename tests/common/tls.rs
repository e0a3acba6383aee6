//! A self-signed certificate for `localhost`, and rustls configs (ring) that serve and trust it.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;
use wsgrpc::ws::{Handler, Message, Session};

/// A certificate made for one test run.
pub struct TestCertificate {
    pub der: CertificateDer<'static>,
    pub pem: String,
    key: Vec<u8>,
}

impl TestCertificate {
    pub fn localhost() -> TestCertificate {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        TestCertificate {
            der: certified.cert.der().clone(),
            pem: certified.cert.pem(),
            key: certified.signing_key.serialize_der(),
        }
    }

    /// A server config presenting this certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivatePkcs8KeyDer::from(self.key.clone()).into();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key)
            .expect("server config");
        Arc::new(config)
    }

    /// A client config trusting this certificate (and nothing else).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.der.clone())
            .expect("trust the test certificate");
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client-side handler that forwards every text it receives to the test.
pub struct Collect(pub mpsc::Sender<String>);

impl Handler for Collect {
    async fn on_message(&self, _session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        let _ = self
            .0
            .send(message.as_text().unwrap_or_default().to_owned())
            .await;
        Ok(())
    }
}
