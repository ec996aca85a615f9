//! A test CA and a server certificate it signed for 127.0.0.1 and localhost, written as PEM
//! files for servers and proxies under test (python-websockets, haproxy, duplex itself).

use std::path::PathBuf;

/// PEM files of a CA and of a server certificate it signed; removed when dropped.
pub struct TestPki {
    /// The CA certificate: what clients trust.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
    /// The certificate followed by its key, in one file (haproxy's `crt`).
    pub combined: PathBuf,
}

impl TestPki {
    /// Generates the CA and the certificate; `test` names the files.
    pub fn new(test: &str) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(DnType::CommonName, "duplex interop test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");

        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &ca_cert, &ca_key).expect("leaf certificate");

        let dir = std::env::temp_dir();
        let stem = format!("duplex-test-pki-{}-{test}", std::process::id());
        let pki = TestPki {
            ca: dir.join(format!("{stem}-ca.pem")),
            cert: dir.join(format!("{stem}-cert.pem")),
            key: dir.join(format!("{stem}-key.pem")),
            combined: dir.join(format!("{stem}-combined.pem")),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).expect("write CA PEM");
        std::fs::write(&pki.cert, cert.pem()).expect("write certificate PEM");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key PEM");
        std::fs::write(&pki.combined, format!("{}{}", cert.pem(), key.serialize_pem())).expect("write combined PEM");
        pki
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        for p in [&self.ca, &self.cert, &self.key, &self.combined] {
            let _ = std::fs::remove_file(p);
        }
    }
}
