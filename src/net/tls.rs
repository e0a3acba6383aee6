//! TLS for every server of the crate (feature `tls`): rustls with the ring provider, one
//! configuration type, one ALPN rule and one handshake timeout.
//!
//! The provider is chosen explicitly rather than through rustls' process-wide default, so this works
//! whichever other rustls providers the dependency graph enables.
//!
//! **The ALPN rule**: a configuration that offers no ALPN protocol gets the protocols of the server
//! it is given to: `http/1.1` for [`ws::Server`](crate::ws::Server), `h2` for
//! [`GrpcServer`](crate::grpc::GrpcServer) (gRPC runs on HTTP/2 alone), `h2` then `http/1.1` for
//! [`App`](crate::serve::App) (browsers open WebSockets over HTTP/1.1). A configuration that offers
//! protocols keeps them as they are.

use std::time::Duration;
use std::{fmt, sync::Arc};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
    server::TlsStream,
};

use crate::{Error, Result};

/// The server's certificate chain and key, or a complete rustls configuration; given to
/// `ws::Server::tls`, `GrpcServer::tls` or `App::tls`.
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

    /// From a rustls configuration, for client authentication or another provider. Without ALPN
    /// protocols it gets those of the server it is given to (the ALPN rule of [`crate::net`]'s TLS).
    pub fn from_rustls(config: impl Into<Arc<ServerConfig>>) -> Self {
        TlsConfig {
            config: config.into(),
        }
    }

    /// The acceptor for a server that speaks `protocols` (ALPN ids, most preferred first), with
    /// the ALPN rule applied.
    pub(crate) fn acceptor(&self, protocols: &[&[u8]]) -> Acceptor {
        let config = if self.config.alpn_protocols.is_empty() {
            let mut config = (*self.config).clone();
            config.alpn_protocols = protocols.iter().map(|id| id.to_vec()).collect();
            Arc::new(config)
        } else {
            Arc::clone(&self.config)
        };
        Acceptor {
            inner: TlsAcceptor::from(config),
        }
    }
}

impl From<Arc<ServerConfig>> for TlsConfig {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsConfig::from_rustls(config)
    }
}

impl From<ServerConfig> for TlsConfig {
    fn from(config: ServerConfig) -> Self {
        TlsConfig::from_rustls(config)
    }
}

/// ALPN id of HTTP/2 (RFC 7540 section 3.1).
pub(crate) const H2: &[u8] = b"h2";
/// ALPN id of HTTP/1.1 (RFC 7301 section 6).
pub(crate) const HTTP_1_1: &[u8] = b"http/1.1";

/// A server's TLS acceptor, its ALPN protocols settled.
#[derive(Clone)]
pub(crate) struct Acceptor {
    inner: TlsAcceptor,
}

impl Acceptor {
    /// The server side of the TLS handshake, bounded by `timeout`. `None` (logged at `DEBUG`) when
    /// it failed or took too long: the connection is simply closed.
    pub(crate) async fn accept<Io>(
        &self,
        io: Io,
        timeout: Duration,
        peer: Option<std::net::SocketAddr>,
    ) -> Option<TlsStream<Io>>
    where
        Io: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(timeout, self.inner.accept(io)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(?peer, %error, "tls handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(?peer, ?timeout, "tls handshake timed out");
                None
            }
        }
    }
}
