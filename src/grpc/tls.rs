//! TLS for the gRPC server (feature `tls`): rustls with the ring provider.
//!
//! The provider is chosen explicitly rather than through rustls' process-wide default, so this works
//! whichever other rustls providers the dependency graph enables. ALPN offers only `h2`, because gRPC
//! runs on HTTP/2 alone.

use std::{fmt, sync::Arc};

use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

use crate::{Error, Result};

/// The server's certificate chain and key, or a complete rustls configuration.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// From a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_chain: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<Self> {
        let certs = CertificateDer::pem_slice_iter(cert_chain.as_ref())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| Error::Tls(error.into()))?;
        if certs.is_empty() {
            return Err(Error::Tls("no certificate in the PEM chain".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key.as_ref())
            .map_err(|error| Error::Tls(error.into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|error| Error::Tls(error.into()))?;
        Ok(TlsConfig::from_rustls(config))
    }

    /// From a rustls configuration, for client authentication or another provider. ALPN is set to
    /// `h2` if the configuration offers no protocol.
    pub fn from_rustls(mut config: ServerConfig) -> Self {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"h2".to_vec()];
        }
        TlsConfig {
            config: Arc::new(config),
        }
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}
