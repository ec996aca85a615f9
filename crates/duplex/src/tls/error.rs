//! [`TlsError`]: what went wrong with TLS, in words, with a [`TlsErrorKind`] for programs.
//!
//! Always compiled, even without the cargo feature `tls`: a `ws://` client that reaches a TLS
//! port reports [`TlsErrorKind::NotTls`], and a `wss://` URL in a build without TLS reports
//! [`TlsErrorKind::Config`].

use std::fmt;

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
    /// match its certificate, a host that is not a valid TLS server name, no crypto provider or
    /// no TLS at all in this build (cargo features), ...
    Config,
    /// Any other handshake failure.
    Handshake,
}

/// A TLS failure: [`Display`](fmt::Display) says what went wrong and, where it can, what to do.
///
/// ```
/// use duplex::tls::{TlsError, TlsErrorKind};
/// let e = TlsError::new(TlsErrorKind::Config, "cert.pem holds no certificate");
/// assert_eq!(e.kind(), TlsErrorKind::Config);
/// assert_eq!(e.to_string(), "cert.pem holds no certificate");
/// ```
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

    #[cfg_attr(not(feature = "tls"), allow(dead_code, reason = "only the rustls glue keeps a source"))]
    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> TlsError {
        self.source = Some(Box::new(source));
        self
    }

    #[cfg_attr(not(any(feature = "tls", feature = "client")), allow(dead_code, reason = "TLS and wss:// refusals"))]
    pub(crate) fn config(message: impl Into<String>) -> TlsError {
        TlsError::new(TlsErrorKind::Config, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// The rustls error underneath, if there is one.
    #[cfg(feature = "tls")]
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

/// A TLS handshake that did not complete: the connection failed under it, or TLS itself did.
/// `?` turns it into [`duplex::Error`](crate::Error) (`Io` or `Tls`).
#[derive(Debug)]
pub enum Failure {
    /// The connection failed (reset, closed before any TLS record, ...).
    Io(std::io::Error),
    /// The TLS handshake failed, in words: see [`TlsError::kind`].
    Tls(TlsError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Io(e) => write!(f, "the connection failed during the TLS handshake: {e}"),
            Failure::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Io(e) => Some(e),
            Failure::Tls(e) => Some(e),
        }
    }
}

impl From<TlsError> for Failure {
    fn from(e: TlsError) -> Self {
        Failure::Tls(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}
