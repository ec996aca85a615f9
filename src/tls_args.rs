//! The TLS options of the server subcommands (`serve`, `echo`), flattened into
//! [`ServerOptions`](crate::server_args::ServerOptions): a certificate from PEM files, or one
//! generated at start-up for development, and optionally required client certificates.

use std::path::PathBuf;
use std::sync::Arc;

use duplex::tls::{self, SelfSigned, TlsAcceptor};

/// How a server serves TLS (`wss://`, `https://`); without these options it serves plain TCP.
#[derive(clap::Args, Debug, Clone, Default)]
#[group(skip)]
pub struct TlsArgs {
    /// Serve wss:// with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key", group = "tls_source", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert", help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,
    /// Serve wss:// with a certificate for localhost, 127.0.0.1 and ::1 generated at start-up (for
    /// development). Its PEM is written to a file whose path is logged, with its SHA-256
    /// fingerprint: clients trust it with `duplex connect --ca PATH`.
    #[arg(long, group = "tls_source", help_heading = "TLS")]
    pub tls_self_signed: bool,
    /// Where --tls-self-signed writes its certificate (default: duplex-self-signed-<pid>.pem in the
    /// system temporary directory).
    #[arg(long, value_name = "PATH", requires = "tls_self_signed", help_heading = "TLS")]
    pub tls_self_signed_out: Option<PathBuf>,
    /// Require a client certificate signed by a CA in this PEM file (mutual TLS); needs
    /// --tls-cert or --tls-self-signed.
    #[arg(long, value_name = "PEM", requires = "tls_source", help_heading = "TLS")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.tls_cert.is_some() || self.tls_self_signed
    }

    /// `ws` or `wss`.
    pub fn ws_scheme(&self) -> &'static str {
        if self.enabled() {
            "wss"
        } else {
            "ws"
        }
    }

    /// `http` or `https`.
    pub fn http_scheme(&self) -> &'static str {
        if self.enabled() {
            "https"
        } else {
            "http"
        }
    }

    /// The acceptor these options describe, or `None` for plain TCP. For `--tls-self-signed`,
    /// generates the certificate, writes it, and logs where and its fingerprint; `port` goes into
    /// the hint of how to connect. The error says what went wrong.
    pub fn acceptor(&self, port: u16) -> Result<Option<TlsAcceptor>, String> {
        let (chain, key) = if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let chain = tls::load_certs(cert).map_err(|e| e.to_string())?;
            let key = tls::load_private_key(key).map_err(|e| e.to_string())?;
            tracing::info!("TLS certificate {} (SHA-256 {})", cert.display(), tls::sha256_fingerprint(&chain[0]));
            (chain, key)
        } else if self.tls_self_signed {
            let cert = SelfSigned::localhost().map_err(|e| e.to_string())?;
            let path = match &self.tls_self_signed_out {
                Some(p) => p.clone(),
                None => std::env::temp_dir().join(format!("duplex-self-signed-{}.pem", std::process::id())),
            };
            cert.write_cert_pem(&path).map_err(|e| e.to_string())?;
            tracing::info!(
                "self-signed TLS certificate for {} (SHA-256 {})",
                cert.names().join(", "),
                cert.fingerprint()
            );
            tracing::info!("trust it with: duplex connect --ca {} wss://localhost:{port}/", path.display());
            tracing::info!("self-signed certificate written to: {}", path.display());
            (vec![cert.cert_der().clone()], cert.private_key())
        } else {
            return Ok(None);
        };
        let config = match &self.tls_client_ca {
            None => tls::server_config(chain, key),
            Some(ca) => {
                let roots = tls::load_root_store(ca).map_err(|e| e.to_string())?;
                tracing::info!("clients must present a certificate signed by {}", ca.display());
                tls::server_config_with_client_auth(chain, key, roots)
            }
        }
        .map_err(|e| e.to_string())?;
        Ok(Some(TlsAcceptor::new(Arc::new(config))))
    }
}
