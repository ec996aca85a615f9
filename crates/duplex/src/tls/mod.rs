//! TLS for `wss://`, with [rustls] (no OpenSSL): cargo feature `tls`, with the `ring` crypto
//! provider by default (`aws-lc-rs` selectable), the platform's roots (`native-roots`) falling
//! back to Mozilla's (`webpki-roots`), and certificates generated at start-up for development
//! (`self-signed`). Without `tls` only [`TlsError`] is here: a `wss://` connect then fails with
//! [`TlsErrorKind::Config`].
//!
//! **Server**: build a [`TlsAcceptor`] from PEM files ([`TlsAcceptor::from_pem_files`]), from a
//! certificate generated at start-up (`SelfSigned`, cargo feature `self-signed`), or from any
//! [`rustls::ServerConfig`]; then [`Server::with_tls`](crate::Server::with_tls). The TLS handshake runs in
//! [`Incoming::request`](crate::Incoming::request), inside the connection's own task and under
//! its handshake timeout, so a slow client never holds up the accept loop. A client that speaks
//! plain HTTP to the TLS port is answered `400` in plain text ("this port speaks TLS").
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use duplex::tls::TlsAcceptor;
//! let tls = TlsAcceptor::from_pem_files("cert.pem", "key.pem")?;
//! let server = duplex::Server::bind("0.0.0.0:443").await?.with_tls(tls);
//! # Ok(()) }
//! ```
//!
//! **Client**: [`connect`](crate::connect)`("wss://…")` verifies the server against the
//! platform's trusted roots (falling back to the Mozilla roots of `webpki-roots` when the platform
//! has none), with SNI from the URL's host. [`Client`](crate::Client) adds a CA file
//! ([`Client::ca_file`](crate::Client::ca_file)), a client certificate for mutual TLS
//! ([`Client::client_cert_files`](crate::Client::client_cert_files)), and an insecure mode for
//! development ([`Client::danger_accept_invalid_certs`](crate::Client::danger_accept_invalid_certs)).
//!
//! Failures are [`Error::Tls`](crate::Error::Tls) with a [`TlsError`] that says what went wrong
//! in words (unknown issuer, a certificate for another name, expired, the peer not speaking TLS,
//! ...) and a [`TlsErrorKind`] for programs; the messages name the API to use, never a command
//! line's flags. See `docs/tls.md` for the whole story.

#[cfg(all(feature = "tls", feature = "server"))]
mod acceptor;
#[cfg(all(feature = "tls", any(feature = "client", feature = "server")))]
pub(crate) mod classify;
#[cfg(all(feature = "tls", feature = "client"))]
pub(crate) mod client;
/// Built without the cargo feature `tls`: no TLS options, and a `wss://` URL is refused.
#[cfg(all(not(feature = "tls"), feature = "client"))]
pub(crate) mod client {
    #[derive(Clone, Debug, Default)]
    pub(crate) struct ClientTls;
}
mod error;
#[cfg(feature = "tls")]
mod pem;
#[cfg(feature = "self-signed")]
mod self_signed;
#[cfg(feature = "tls")]
mod server_config;
#[cfg(all(feature = "tls", feature = "client"))]
mod verifier;

#[cfg(all(feature = "tls", feature = "server"))]
pub use crate::stream::TlsServerStream;
#[cfg(all(feature = "tls", feature = "server"))]
pub use acceptor::TlsAcceptor;
pub use error::{Failure, TlsError, TlsErrorKind};
#[cfg(feature = "tls")]
pub use pem::{load_certs, load_private_key, load_root_store, sha256_fingerprint};
#[cfg(feature = "self-signed")]
pub use self_signed::{SelfSigned, LOCALHOST_NAMES};
#[cfg(feature = "tls")]
pub use server_config::{server_config, server_config_with_client_auth};

/// The ALPN protocol both sides offer: WebSockets (RFC 6455) run over HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The reason phrase of a TLS server's answer to a plain client; a `ws://` client recognises it
/// (and reports [`TlsErrorKind::NotTls`]) with or without TLS compiled in.
#[cfg_attr(
    not(any(feature = "client", all(feature = "server", feature = "tls"))),
    allow(dead_code, reason = "a TLS server sends it, a client recognises it")
)]
pub(crate) const PLAIN_ON_TLS_REASON: &str = "This port speaks TLS; use wss:// or https://";

/// The crypto provider every configuration built here uses: the process default if the
/// application installed one (`CryptoProvider::install_default`), else the one compiled in
/// (cargo feature `aws-lc-rs` if on, else `ring`). Without either feature and without a process
/// default it is a [`TlsErrorKind::Config`] error that says so.
///
/// ```
/// # #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
/// assert!(!duplex::tls::crypto_provider().unwrap().cipher_suites.is_empty());
/// ```
#[cfg(feature = "tls")]
pub fn crypto_provider() -> Result<std::sync::Arc<rustls::crypto::CryptoProvider>, TlsError> {
    if let Some(p) = rustls::crypto::CryptoProvider::get_default() {
        return Ok(p.clone());
    }
    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    {
        use std::sync::{Arc, OnceLock};
        static BUILT_IN: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
        #[cfg(feature = "aws-lc-rs")]
        let built_in = rustls::crypto::aws_lc_rs::default_provider;
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        let built_in = rustls::crypto::ring::default_provider;
        Ok(BUILT_IN.get_or_init(|| Arc::new(built_in())).clone())
    }
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    Err(TlsError::config(
        "no TLS crypto provider: build duplex with the cargo feature `ring` or `aws-lc-rs`, or install one \
         with rustls::crypto::CryptoProvider::install_default",
    ))
}
