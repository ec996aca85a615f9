//! [`SelfSigned`]: a certificate generated at start-up for development (cargo feature
//! `self-signed`: rcgen; the command line and the tests enable it).

use std::fmt;
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

use super::{server_config, sha256_fingerprint, TlsError};

/// The names [`SelfSigned::localhost`] covers.
pub const LOCALHOST_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate generated at start-up (with rcgen) for development: self-signed, ECDSA P-256,
/// for the names given. Clients trust it by its PEM ([`SelfSigned::write_cert_pem`], then
/// [`Client::ca_file`](crate::Client::ca_file)) or by its fingerprint.
///
/// ```
/// # fn main() -> Result<(), duplex::tls::TlsError> {
/// let cert = duplex::tls::SelfSigned::localhost()?;
/// assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// let config = cert.server_config()?; // for Server::with_tls
/// assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
/// # Ok(()) }
/// ```
pub struct SelfSigned {
    names: Vec<String>,
    cert: CertificateDer<'static>,
    cert_pem: String,
    key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSigned")
            .field("names", &self.names)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl SelfSigned {
    /// A certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn localhost() -> Result<SelfSigned, TlsError> {
        SelfSigned::generate(LOCALHOST_NAMES)
    }

    /// A certificate for these names: host names, or IP addresses (which become IP SANs).
    pub fn generate<I, N>(names: I) -> Result<SelfSigned, TlsError>
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let fail = |e: rcgen::Error| TlsError::config(format!("cannot generate a certificate: {e}"));
        let mut params = rcgen::CertificateParams::new(names.clone()).map_err(fail)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cn = format!("duplex self-signed ({})", names.first().map(String::as_str).unwrap_or("no name"));
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let cert = params.self_signed(&key).map_err(fail)?;
        Ok(SelfSigned {
            names,
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// The names the certificate is valid for.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate, PEM: what a client needs to trust this server.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, DER (PKCS#8).
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The private key, PEM (PKCS#8), to serve the certificate from files
    /// ([`TlsAcceptor::from_pem_files`](super::TlsAcceptor::from_pem_files)).
    pub fn key_pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.key.secret_pkcs8_der());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// The certificate's SHA-256 fingerprint ([`sha256_fingerprint`]).
    pub fn fingerprint(&self) -> String {
        sha256_fingerprint(&self.cert)
    }

    /// Writes the certificate (not the key) as PEM to `path`.
    pub fn write_cert_pem(&self, path: impl AsRef<Path>) -> Result<(), TlsError> {
        let path = path.as_ref();
        std::fs::write(path, &self.cert_pem)
            .map_err(|e| TlsError::config(format!("cannot write the certificate to {}: {e}", path.display())))
    }

    /// A [`server_config`] serving this certificate.
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        server_config(vec![self.cert.clone()], self.private_key())
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn self_signed_localhost() {
        let cert = SelfSigned::localhost().unwrap();
        assert_eq!(cert.names(), LOCALHOST_NAMES);
        assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let config = cert.server_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem().as_bytes()).unwrap();
        assert_eq!(key.secret_der(), cert.private_key().secret_der());
    }
}
