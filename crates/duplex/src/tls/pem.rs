//! Certificates and keys from PEM files, root stores from CA files, fingerprints.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use sha2::{Digest, Sha256};

use super::TlsError;

/// Reads every certificate in a PEM file (a chain: the leaf first, then its intermediates).
///
/// ```
/// use duplex::tls::{self, TlsErrorKind};
/// let e = tls::load_certs("/nonexistent/cert.pem").unwrap_err();
/// assert_eq!(e.kind(), TlsErrorKind::Config);
/// assert!(e.to_string().contains("/nonexistent/cert.pem"));
/// ```
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::config(format!("cannot read certificates from {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::config(format!(
            "{} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "it holds no private key (expected PEM: PKCS#8, PKCS#1 or SEC1)".to_owned()
            }
            e => e.to_string(),
        };
        TlsError::config(format!("cannot read a private key from {}: {why}", path.display()))
    })
}

/// Reads the certificates of a PEM file into a root store (a CA file).
pub fn load_root_store(path: impl AsRef<Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    add_roots_from_file(&mut roots, path.as_ref())?;
    Ok(roots)
}

/// Adds the certificates of the CA file at `path` to `roots`.
pub(crate) fn add_roots_from_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| {
            TlsError::config(format!("{} holds a certificate that cannot be a trusted root: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// The SHA-256 fingerprint of a DER certificate, as browsers and `openssl x509 -fingerprint`
/// show it: uppercase hex pairs joined by colons.
///
/// ```
/// let f = duplex::tls::sha256_fingerprint(b"abc");
/// assert_eq!(&f[..8], "BA:78:16");
/// assert_eq!(f.len(), 32 * 3 - 1);
/// ```
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}
