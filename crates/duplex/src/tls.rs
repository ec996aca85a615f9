//! TLS for `wss://`, with [rustls] and its `ring` crypto provider (no OpenSSL).
//!
//! **Server**: build a [`TlsAcceptor`] from PEM files ([`TlsAcceptor::from_pem_files`]), from a
//! certificate generated at start-up ([`SelfSigned`]), or from any [`rustls::ServerConfig`]; then
//! [`Server::with_tls`](crate::Server::with_tls). The TLS handshake runs in
//! [`Incoming::request`](crate::Incoming::request), inside the connection's own task and under
//! its handshake timeout, so a slow client never holds up the accept loop. A client that speaks
//! plain HTTP to the TLS port is answered `400` in plain text ("this port speaks TLS").
//!
//! ```no_run
//! # async fn f() -> duplex::Result<()> {
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
//! Failures are [`Error::Tls`] with a [`TlsError`] that says what went wrong in words (unknown
//! issuer, a certificate for another name, expired, the peer not speaking TLS, ...) and a
//! [`TlsErrorKind`] for programs. See `docs/tls.md` for the whole story.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::stream::ClientStream;

/// The ALPN protocol both sides offer: WebSockets (RFC 6455) run over HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The names [`SelfSigned::localhost`] covers.
pub const LOCALHOST_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The crypto provider every configuration built here uses: rustls' `ring` provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

// ---------------------------------------------------------------------------------------------
// Errors

/// What kind of TLS failure a [`TlsError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The peer's certificate is not signed by a trusted CA (a self-signed certificate, or a CA
    /// that is not in the trusted roots).
    UnknownIssuer,
    /// The server's certificate does not name the host connected to.
    NameMismatch,
    /// The peer's certificate has expired.
    Expired,
    /// The peer's certificate is not valid yet (its notBefore is in the future).
    NotValidYet,
    /// The peer's certificate was rejected for another reason (bad signature, wrong usage, ...).
    BadCertificate,
    /// The peer does not speak TLS: a `wss://` URL pointing at a `ws://` server, or a plain
    /// client on a TLS port.
    NotTls,
    /// The server requires a client certificate (mutual TLS) and the client sent none.
    ClientCertificateRequired,
    /// The peer refused the handshake with an alert (it does not trust our certificate, ...).
    Refused,
    /// The configuration cannot be used: an unreadable or empty PEM file, a key that does not
    /// match its certificate, a host that is not a valid TLS server name, ...
    Config,
    /// Any other handshake failure.
    Handshake,
}

/// A TLS failure: [`Display`](fmt::Display) says what went wrong and, where it can, what to do.
#[derive(Debug)]
pub struct TlsError {
    kind: TlsErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl TlsError {
    /// A TLS error of `kind` with `message`.
    pub fn new(kind: TlsErrorKind, message: impl Into<String>) -> TlsError {
        TlsError { kind, message: message.into(), source: None }
    }

    fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> TlsError {
        self.source = Some(Box::new(source));
        self
    }

    fn config(message: impl Into<String>) -> TlsError {
        TlsError::new(TlsErrorKind::Config, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// The rustls error underneath, if there is one.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        self.source.as_deref().and_then(|s| s.downcast_ref())
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Error::Tls(e)
    }
}

/// Which end of the connection we are, for wording errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Turns an I/O error from a TLS stream into [`Error::Tls`] when rustls is behind it, or when
/// the peer hung up in the middle of the handshake; any other error stays [`Error::Io`].
/// `peer` is the host name (client side) or the peer's address (server side).
pub(crate) fn classify_io(e: io::Error, side: Side, peer: &str, during_handshake: bool) -> Error {
    if let Some(r) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return Error::Tls(classify_rustls(r.clone(), side, peer));
    }
    if during_handshake && e.kind() == io::ErrorKind::UnexpectedEof {
        let message = match side {
            Side::Client => format!(
                "the server {peer} closed the connection during the TLS handshake: is it ws:// rather than wss://, \
                 or does it require a client certificate?"
            ),
            Side::Server => format!("the client {peer} closed the connection during the TLS handshake"),
        };
        return Error::Tls(TlsError::new(TlsErrorKind::Handshake, message).with_source(e));
    }
    Error::Io(e)
}

/// Words for a rustls error.
fn classify_rustls(e: rustls::Error, side: Side, peer: &str) -> TlsError {
    use TlsErrorKind as K;
    let (whose, other) = match side {
        Side::Client => ("the server's certificate", "the server"),
        Side::Server => ("the client's certificate", "the client"),
    };
    let (kind, message) = match &e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => (
                K::UnknownIssuer,
                match side {
                    Side::Client => format!(
                        "{whose} for {peer} is signed by an unknown issuer (no trusted CA): trust its CA with \
                         Client::ca_file (`duplex connect --ca FILE`), or, for development only, skip \
                         verification with Client::danger_accept_invalid_certs (`--insecure`)"
                    ),
                    Side::Server => format!("{whose} ({peer}) is signed by an unknown issuer (not the client CA)"),
                },
            ),
            CertificateError::NotValidForName => (K::NameMismatch, format!("{whose} is not valid for host {peer}")),
            CertificateError::NotValidForNameContext { presented, .. } => {
                let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
                let names = if names.is_empty() { "no names".to_owned() } else { names.join(", ") };
                (K::NameMismatch, format!("{whose} is not valid for host {peer}: it is for {names}"))
            }
            CertificateError::Expired => (K::Expired, format!("{whose} ({peer}) has expired")),
            CertificateError::ExpiredContext { time, not_after } => (
                K::Expired,
                format!(
                    "{whose} ({peer}) has expired: it was valid until {}, and it is now {}",
                    utc(not_after.as_secs()),
                    utc(time.as_secs())
                ),
            ),
            CertificateError::NotValidYet => (K::NotValidYet, format!("{whose} ({peer}) is not valid yet")),
            CertificateError::NotValidYetContext { time, not_before } => (
                K::NotValidYet,
                format!(
                    "{whose} ({peer}) is not valid yet: it is valid from {}, and it is now {} (check the clock)",
                    utc(not_before.as_secs()),
                    utc(time.as_secs())
                ),
            ),
            other_error => (K::BadCertificate, format!("{whose} ({peer}) was rejected: {other_error:?}")),
        },
        rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion
            | rustls::InvalidMessage::MessageTooLarge,
        ) => (
            K::NotTls,
            match side {
                Side::Client => {
                    format!("the server {peer} did not answer with TLS: is it ws:// rather than wss://?")
                }
                Side::Server => {
                    format!("the client {peer} did not speak TLS: plain ws:// or http:// to a TLS port?")
                }
            },
        ),
        rustls::Error::NoCertificatesPresented => (
            K::ClientCertificateRequired,
            format!("the client {peer} presented no certificate, and this server requires one (mutual TLS)"),
        ),
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => (
            K::ClientCertificateRequired,
            format!(
                "{other} {peer} requires a client certificate (mutual TLS): give one with \
                 Client::client_cert_files (`duplex connect --cert FILE --key FILE`)"
            ),
        ),
        rustls::Error::AlertReceived(
            a @ (AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied),
        ) => (
            K::Refused,
            match side {
                Side::Client => format!("the server {peer} rejected our client certificate (TLS alert {a:?})"),
                Side::Server => format!("the client {peer} rejected our certificate (TLS alert {a:?})"),
            },
        ),
        rustls::Error::AlertReceived(a) => {
            (K::Refused, format!("{other} {peer} refused the TLS handshake (alert {a:?})"))
        }
        rustls::Error::NoApplicationProtocol => {
            (K::Handshake, format!("{other} {peer} has no ALPN protocol in common with us (we offer http/1.1)"))
        }
        _ => (K::Handshake, format!("TLS handshake with {peer} failed: {e}")),
    };
    TlsError::new(kind, message).with_source(e)
}

/// A name as webpki reports it (`DnsName("a.test")`, `IpAddress(10.0.0.1)`), without the wrapper.
fn plain_name(name: &str) -> &str {
    let inner = name
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| name.strip_prefix("IpAddress(").and_then(|n| n.strip_suffix(')')));
    inner.unwrap_or(name)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

// ---------------------------------------------------------------------------------------------
// PEM files and fingerprints

/// Reads every certificate in a PEM file (a chain: the leaf first, then its intermediates).
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::config(format!("cannot read certificates from {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::config(format!(
            "{} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        ))
        .into());
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "it holds no private key (expected PEM: PKCS#8, PKCS#1 or SEC1)".to_owned()
            }
            e => e.to_string(),
        };
        Error::Tls(TlsError::config(format!("cannot read a private key from {}: {why}", path.display())))
    })
}

/// Reads the certificates of a PEM file into a root store (a CA file).
pub fn load_root_store(path: impl AsRef<Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    add_roots_from_file(&mut roots, path.as_ref())?;
    Ok(roots)
}

fn add_roots_from_file(roots: &mut RootCertStore, path: &Path) -> Result<()> {
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| {
            TlsError::config(format!("{} holds a certificate that cannot be a trusted root: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// The SHA-256 fingerprint of a DER certificate, as browsers and `openssl x509 -fingerprint`
/// show it: uppercase hex pairs joined by colons.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

// ---------------------------------------------------------------------------------------------
// Server

/// A [`rustls::ServerConfig`] for a certificate chain and its key: the `ring` provider, TLS 1.2
/// and 1.3, no client certificates, ALPN `http/1.1`.
pub fn server_config(cert_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<ServerConfig> {
    finish_server_config(
        ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config(format!("TLS protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(cert_chain, key),
    )
}

/// Like [`server_config`], but every client must present a certificate signed by one of
/// `client_roots` (mutual TLS); see [`load_root_store`].
pub fn server_config_with_client_auth(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: RootCertStore,
) -> Result<ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), crypto_provider())
        .build()
        .map_err(|e| TlsError::config(format!("the client CA cannot be used: {e}")))?;
    finish_server_config(
        ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config(format!("TLS protocol versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(cert_chain, key),
    )
}

fn finish_server_config(built: Result<ServerConfig, rustls::Error>) -> Result<ServerConfig> {
    let mut config = built.map_err(|e| {
        TlsError::config(format!("the certificate and key cannot be used together: {e}")).with_source(e)
    })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}

/// A certificate generated at start-up (with rcgen) for development: self-signed, ECDSA P-256,
/// for the names given. Clients trust it by its PEM ([`SelfSigned::write_cert_pem`], then
/// [`Client::ca_file`](crate::Client::ca_file)) or by its fingerprint.
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
    pub fn localhost() -> Result<SelfSigned> {
        SelfSigned::generate(LOCALHOST_NAMES)
    }

    /// A certificate for these names: host names, or IP addresses (which become IP SANs).
    pub fn generate<I, N>(names: I) -> Result<SelfSigned>
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let fail = |e: rcgen::Error| Error::Tls(TlsError::config(format!("cannot generate a certificate: {e}")));
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

    /// The private key, PEM (PKCS#8), to serve the certificate from files (`--tls-key`).
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
    pub fn write_cert_pem(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, &self.cert_pem).map_err(|e| {
            Error::Tls(TlsError::config(format!("cannot write the certificate to {}: {e}", path.display())))
        })
    }

    /// A [`server_config`] serving this certificate.
    pub fn server_config(&self) -> Result<ServerConfig> {
        server_config(vec![self.cert.clone()], self.private_key())
    }
}

/// The TLS side of a [`Server`](crate::Server): a shared [`rustls::ServerConfig`], and the
/// handshake that turns an accepted TCP stream into a TLS one.
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl TlsAcceptor {
    /// Uses this configuration as it is. (Set its `alpn_protocols` to `[b"http/1.1"]` if clients
    /// may offer HTTP/2; the helpers here do.)
    pub fn new(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor { config }
    }

    /// Serves the certificate chain in `cert` (PEM, leaf first) with the key in `key` (PEM).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<TlsAcceptor> {
        let config = server_config(load_certs(cert)?, load_private_key(key)?)?;
        Ok(TlsAcceptor::new(Arc::new(config)))
    }

    /// Serves a generated certificate.
    pub fn from_self_signed(cert: &SelfSigned) -> Result<TlsAcceptor> {
        Ok(TlsAcceptor::new(Arc::new(cert.server_config()?)))
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs the server side of the TLS handshake on an accepted connection, with no deadline of
    /// its own (the server runs it under the handshake timeout).
    ///
    /// A client that does not start with a TLS handshake record (a plain `ws://` or `http://`
    /// client on the TLS port) is answered `400 This port speaks TLS` in plain text and the
    /// error is [`TlsErrorKind::NotTls`].
    pub async fn accept(&self, mut tcp: TcpStream) -> Result<tokio_rustls::server::TlsStream<TcpStream>> {
        let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "(unknown)".into());
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await? == 0 {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection before the TLS handshake",
            )));
        }
        // Every TLS connection opens with a handshake record (content type 22).
        if first[0] != 0x16 {
            tracing::debug!(%peer, first_byte = first[0], "not a TLS client hello: answering 400 in plain text");
            answer_plain_client(&mut tcp).await;
            return Err(Error::Tls(TlsError::new(
                TlsErrorKind::NotTls,
                format!("the client {peer} did not speak TLS: plain ws:// or http:// to a TLS port (answered 400)"),
            )));
        }
        tokio_rustls::TlsAcceptor::from(self.config.clone())
            .accept(tcp)
            .await
            .map_err(|e| classify_io(e, Side::Server, &peer, true))
    }
}

/// The reason phrase of the answer to a plain client on a TLS port; the client recognises it.
pub(crate) const PLAIN_ON_TLS_REASON: &str = "This port speaks TLS; use wss:// or https://";

/// Answers a plain HTTP client on a TLS port, so that it says what is wrong instead of hanging.
async fn answer_plain_client(tcp: &mut TcpStream) {
    // Take what the client sent (its request head, usually one segment), so that closing does not
    // reset the connection before our answer is read.
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), tcp.read(&mut sink)).await;
    let body = "this port speaks TLS: connect with wss:// (or https://) instead of ws:// (or http://)\n";
    let response = format!(
        "HTTP/1.1 400 {PLAIN_ON_TLS_REASON}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor::new(config)
    }
}

impl From<ServerConfig> for TlsAcceptor {
    fn from(config: ServerConfig) -> Self {
        TlsAcceptor::new(Arc::new(config))
    }
}

// ---------------------------------------------------------------------------------------------
// Client

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
    fn client_config(&self) -> Result<Arc<ClientConfig>> {
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

    fn build(&self) -> Result<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config(format!("TLS protocol versions: {e}")))?;
        let builder = if self.insecure {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(crypto_provider())))
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
    pub(crate) async fn connect(&self, tcp: TcpStream, host: &str) -> Result<ClientStream> {
        let config = self.client_config()?;
        if self.insecure && self.custom.is_none() {
            tracing::warn!(
                "TLS certificate verification is OFF for {host} (danger_accept_invalid_certs / --insecure): \
                 anyone on the path can read and change this connection; use it for development only"
            );
        }
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| TlsError::config(format!("{host:?} cannot be used as a TLS server name: {e}")))?;
        match tokio_rustls::TlsConnector::from(config).connect(name, tcp).await {
            Ok(s) => Ok(ClientStream::Tls(Box::new(s))),
            Err(e) => Err(classify_io(e, Side::Client, host, true)),
        }
    }
}

/// The platform's trusted roots (rustls-native-certs), or, when none load, the Mozilla roots
/// compiled into `webpki-roots`. Loaded once per process.
fn platform_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("loading the platform's root certificates: {e}");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::debug!("no platform root certificates ({ignored} unusable): using the webpki-roots set");
            RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
        } else {
            tracing::debug!("{added} platform root certificates ({ignored} unusable)");
            roots
        }
    })
}

/// `danger_accept_invalid_certs`: accepts any server certificate, but still checks that the
/// server holds its key (the handshake signatures), so the connection is at least encrypted to
/// whoever answered.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        assert_eq!(plain_name("DnsName(\"example.test\")"), "example.test");
        assert_eq!(plain_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn fingerprints_are_colon_separated_hex() {
        let f = sha256_fingerprint(b"abc");
        assert_eq!(&f[..8], "BA:78:16");
        assert_eq!(f.len(), 32 * 3 - 1);
    }

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

    #[test]
    fn missing_files_say_which() {
        let e = load_certs("/nonexistent/cert.pem").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
        assert!(matches!(&e, Error::Tls(t) if t.kind() == TlsErrorKind::Config));
    }
}
