//! The errors of the tokio layer.

use std::fmt;
use std::io;

use duplex_proto::handshake::HandshakeError;
use duplex_proto::{CloseCode, ProtocolError, SendError};

use crate::tls::TlsError;

/// What went wrong on a connection or while opening one.
///
/// ```
/// # async fn f() {
/// match duplex::connect("ws://127.0.0.1:1/").await {
///     Err(duplex::Error::Io(e)) => eprintln!("could not connect: {e}"),
///     Err(e) => eprintln!("{e}"),
///     Ok(_) => {}
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (connection refused, reset, ...).
    Io(io::Error),
    /// The peer broke the protocol; the close frame with [`ProtocolError::code`] was sent.
    Protocol(ProtocolError),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// What the application asked to send cannot be sent.
    Send(SendError),
    /// The peer closed the TCP connection without a close frame (close code 1006).
    AbnormalClosure,
    /// The connection is already closed.
    Closed,
    /// A deadline passed: `what` says which one.
    Timeout(&'static str),
    /// The server refused the upgrade with this HTTP status (403 foreign origin, 503 at its
    /// connection limit or shutting down), for this reason.
    Refused(u16, String),
    /// The URL cannot be used for a WebSocket.
    Url(String),
    /// TLS failed: the peer's certificate is not trusted or not for this host, the peer does not
    /// speak TLS, a PEM file cannot be read, ... [`TlsError::kind`] tells which.
    Tls(TlsError),
}

impl Error {
    /// The close code that describes this error, as a browser's `CloseEvent.code` would.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Error::Protocol(e) => e.code(),
            _ => CloseCode::ABNORMAL,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Handshake(e) => write!(f, "opening handshake failed: {e}"),
            Error::Send(e) => write!(f, "cannot send: {e}"),
            Error::AbnormalClosure => f.write_str("the peer closed the connection without a close frame (1006)"),
            Error::Closed => f.write_str("the connection is closed"),
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::Url(e) => write!(f, "bad WebSocket URL: {e}"),
            Error::Refused(status, why) => write!(f, "refused with HTTP {status}: {why}"),
            Error::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::Send(e) => Some(e),
            Error::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Closed => Error::Closed,
            e => Error::Send(e),
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
