//! The TLS options of a [`Client`](crate::Client), the configuration built from them, and the
//! client side of the handshake.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

use super::classify::{classify_io, Side};
use super::pem::add_roots_from_file;
use super::verifier::AcceptAnyServerCert;
use super::{crypto_provider, load_certs, load_private_key, Failure, TlsError, ALPN_HTTP11};
use crate::stream::ClientStream;

/// The TLS options of a [`Client`](crate::Client); its methods set them.
#[derive(Clone, Default)]
pub(crate) struct ClientTls {
    ca_files: Vec<PathBuf>,
    roots: Vec<CertificateDer<'static>>,
    identity: Option<Identity>,
    insecure: bool,
    custom: Option<Arc<ClientConfig>>,
    /// The configuration built from the options, at the first `wss://` connect; cleared by every
    /// change of the options.
    built: Arc<OnceLock<Arc<ClientConfig>>>,
}

#[derive(Clone)]
enum Identity {
    Files { cert: PathBuf, key: PathBuf },
    Der { chain: Vec<CertificateDer<'static>>, key: Arc<PrivateKeyDer<'static>> },
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_files", &self.ca_files)
            .field("extra_roots", &self.roots.len())
            .field(
                "client_cert",
                &match &self.identity {
                    None => "none".to_owned(),
                    Some(Identity::Files { cert, .. }) => cert.display().to_string(),
                    Some(Identity::Der { .. }) => "(in memory)".to_owned(),
                },
            )
            .field("danger_accept_invalid_certs", &self.insecure)
            .field("custom_config", &self.custom.is_some())
            .finish()
    }
}

impl ClientTls {
    fn changed(&mut self) {
        self.built = Arc::default();
    }

    pub(crate) fn add_ca_file(&mut self, path: PathBuf) {
        self.ca_files.push(path);
        self.changed();
    }

    pub(crate) fn add_root(&mut self, cert: CertificateDer<'static>) {
        self.roots.push(cert);
        self.changed();
    }

    pub(crate) fn set_identity_files(&mut self, cert: PathBuf, key: PathBuf) {
        self.identity = Some(Identity::Files { cert, key });
        self.changed();
    }

    pub(crate) fn set_identity(&mut self, chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) {
        self.identity = Some(Identity::Der { chain, key: Arc::new(key) });
        self.changed();
    }

    pub(crate) fn set_insecure(&mut self, on: bool) {
        self.insecure = on;
        self.changed();
    }

    pub(crate) fn set_custom(&mut self, config: Arc<ClientConfig>) {
        self.custom = Some(config);
        self.changed();
    }

    /// The configuration for a connection: the custom one, or the one built from the options.
    fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        if let Some(c) = &self.custom {
            return Ok(c.clone());
        }
        if let Some(c) = self.built.get() {
            return Ok(c.clone());
        }
        let config = Arc::new(self.build()?);
        let _ = self.built.set(config.clone());
        Ok(config)
    }

    fn build(&self) -> Result<ClientConfig, TlsError> {
        let provider = crypto_provider()?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config(format!("TLS protocol versions: {e}")))?;
        let builder = if self.insecure {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        } else {
            let mut roots = platform_roots().clone();
            for path in &self.ca_files {
                add_roots_from_file(&mut roots, path)?;
            }
            for cert in &self.roots {
                roots
                    .add(cert.clone())
                    .map_err(|e| TlsError::config(format!("a root certificate cannot be used: {e}")))?;
            }
            if roots.is_empty() {
                return Err(TlsError::config(
                    "no trusted root certificates: build duplex with the cargo feature `native-roots` or \
                     `webpki-roots`, or give the roots with Client::ca_file or Client::add_root_certificate",
                ));
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let (chain, key, what) = match identity {
                    Identity::Files { cert, key } => {
                        (load_certs(cert)?, load_private_key(key)?, format!("{} and {}", cert.display(), key.display()))
                    }
                    Identity::Der { chain, key } => (chain.clone(), key.clone_key(), "the client certificate".into()),
                };
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    TlsError::config(format!("{what} cannot be used as a client certificate and key: {e}"))
                })?
            }
        };
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(config)
    }

    /// The client side of the TLS handshake, SNI and verification for `host`. No deadline of its
    /// own: [`Client::connect`](crate::Client::connect) runs it under the handshake timeout.
    pub(crate) async fn connect(&self, tcp: TcpStream, host: &str) -> Result<ClientStream, Failure> {
        Ok(ClientStream::Tls(Box::new(self.connect_stream(tcp, host).await?)))
    }

    /// [`ClientTls::connect`] over any stream: TLS to an `https://` proxy, or TLS to the server
    /// inside the tunnel of one.
    pub(crate) async fn connect_stream<S>(
        &self,
        io: S,
        host: &str,
    ) -> Result<tokio_rustls::client::TlsStream<S>, Failure>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let config = self.client_config()?;
        if self.insecure && self.custom.is_none() {
            tracing::warn!(
                "TLS certificate verification is OFF for {host} (danger_accept_invalid_certs): anyone on the \
                 path can read and change this connection; use it for development only"
            );
        }
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| TlsError::config(format!("{host:?} cannot be used as a TLS server name: {e}")))?;
        match tokio_rustls::TlsConnector::from(config).connect(name, io).await {
            Ok(s) => Ok(s),
            Err(e) => Err(classify_io(e, Side::Client, host, true)),
        }
    }
}

/// The trusted roots a client starts from, loaded once per process: the platform's
/// (rustls-native-certs, cargo feature `native-roots`), or, when none load or that feature is
/// off, the Mozilla roots compiled into `webpki-roots` (cargo feature `webpki-roots`). Empty
/// with neither: the application gives its own.
fn platform_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        #[allow(unused_mut, reason = "only the root-store features add to it")]
        let mut roots = RootCertStore::empty();
        #[cfg(feature = "native-roots")]
        {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!("loading the platform's root certificates: {e}");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!("{added} platform root certificates ({ignored} unusable)");
        }
        #[cfg(feature = "webpki-roots")]
        if roots.is_empty() {
            tracing::debug!("no platform root certificates: using the webpki-roots set");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}
