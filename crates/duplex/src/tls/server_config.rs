//! [`rustls::ServerConfig`]s for a certificate and key, with or without client certificates.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::{crypto_provider, TlsError, ALPN_HTTP11};

/// A [`rustls::ServerConfig`] for a certificate chain and its key: the [`crypto_provider`],
/// TLS 1.2 and 1.3, no client certificates, ALPN `http/1.1`.
///
/// ```no_run
/// # fn main() -> Result<(), duplex::tls::TlsError> {
/// use duplex::tls;
/// let config = tls::server_config(tls::load_certs("cert.pem")?, tls::load_private_key("key.pem")?)?;
/// # Ok(()) }
/// ```
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TlsError> {
    finish_server_config(
        ServerConfig::builder_with_provider(crypto_provider()?)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config(format!("TLS protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(cert_chain, key),
    )
}

/// Like [`server_config`], but every client must present a certificate signed by one of
/// `client_roots` (mutual TLS); see [`load_root_store`](super::load_root_store).
pub fn server_config_with_client_auth(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: RootCertStore,
) -> Result<ServerConfig, TlsError> {
    let provider = crypto_provider()?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
        .build()
        .map_err(|e| TlsError::config(format!("the client CA cannot be used: {e}")))?;
    finish_server_config(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config(format!("TLS protocol versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(cert_chain, key),
    )
}

fn finish_server_config(built: Result<ServerConfig, rustls::Error>) -> Result<ServerConfig, TlsError> {
    let mut config = built.map_err(|e| {
        TlsError::config(format!("the certificate and key cannot be used together: {e}")).with_source(e)
    })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}
