//! The errors of the tokio layer.

use std::fmt;
use std::io;

use duplex_proto::handshake::{HandshakeError, Refusal};
pub use duplex_proto::TimeoutKind;
use duplex_proto::{CloseCode, ConnectionError, ProtocolError, SendError};

use crate::outbox::TrySendError;
use crate::proxy::ProxyError;
use crate::tls::{Failure, TlsError};

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
    /// The peer ended the transport (TCP FIN, HTTP/2 END_STREAM) without a close frame (close code
    /// 1006).
    AbnormalClosure,
    /// The connection is already closed.
    Closed,
    /// A [`Sender`](crate::Sender) could not queue a message: the connection already has more
    /// than its write buffer limit waiting (the peer reads slower than it is sent to), so the
    /// message was refused or, with [`SlowConsumer::Drop`](crate::SlowConsumer::Drop), dropped.
    Backpressure(TrySendError),
    /// A deadline passed: the [`TimeoutKind`] says which one (connecting, the TLS or opening
    /// handshake, a keepalive ping left unanswered, the close handshake).
    Timeout(TimeoutKind),
    /// The upgrade was refused with an HTTP answer instead of `101 Switching Protocols`: its
    /// status, headers and (bounded) body. A client gets it from the server it connected to; a
    /// server's [`Incoming::request`](crate::Incoming::request) and
    /// [`UpgradeRequest::accept`](crate::UpgradeRequest::accept) return the one they sent (403
    /// for a foreign origin, 503 at the connection limit or while shutting down).
    Refused(Box<Refusal>),
    /// The URL cannot be used for a WebSocket.
    Url(String),
    /// A proxy could not be reached, refused, or does not speak what its URL says:
    /// [`ProxyError::kind`](crate::proxy::ProxyError::kind) tells which, with its answer.
    Proxy(Box<ProxyError>),
    /// TLS failed: the peer's certificate is not trusted or not for this host, the peer does not
    /// speak TLS, a PEM file cannot be read, ... [`TlsError::kind`] tells which.
    Tls(TlsError),
    /// A trusted proxy's connection did not start with a valid PROXY protocol header (see
    /// [`TrustedProxies::proxy_protocol`](crate::TrustedProxies::proxy_protocol)).
    ProxyHeader(duplex_proto::proxy_header::ProxyHeaderError),
}

impl Error {
    /// The close code that describes this error, as a browser's `CloseEvent.code` would.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Error::Protocol(e) => e.code(),
            _ => CloseCode::ABNORMAL,
        }
    }

    /// Whether a deadline passed (any [`TimeoutKind`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
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
            Error::Backpressure(e) => e.fmt(f),
            Error::Timeout(kind) => write!(f, "timed out: {kind}"),
            Error::Url(e) => write!(f, "bad WebSocket URL: {e}"),
            Error::Refused(r) => write!(f, "the WebSocket upgrade was refused: {r}"),
            Error::Tls(e) => write!(f, "TLS: {e}"),
            Error::ProxyHeader(e) => write!(f, "{e}"),
            Error::Proxy(e) => write!(f, "proxy: {e}"),
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
            Error::ProxyHeader(e) => Some(e),
            Error::Proxy(e) => Some(&**e),
            Error::Backpressure(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Error::Tls(e)
    }
}

impl From<Failure> for Error {
    fn from(e: Failure) -> Self {
        match e {
            Failure::Io(e) => Error::Io(e),
            Failure::Tls(e) => Error::Tls(e),
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
        match e {
            // One shape for a refusal, whichever layer noticed it.
            HandshakeError::Refused(r) => Error::Refused(r),
            e => Error::Handshake(e),
        }
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

impl From<TrySendError> for Error {
    fn from(e: TrySendError) -> Self {
        match e {
            TrySendError::Closed => Error::Closed,
            e => Error::Backpressure(e),
        }
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Protocol(e) => Error::Protocol(e),
            ConnectionError::AbnormalClosure => Error::AbnormalClosure,
            ConnectionError::Timeout(kind) => Error::Timeout(kind),
            // A kind added to the core later: keep its message.
            other => Error::Io(std::io::Error::other(other.to_string())),
        }
    }
}

impl From<ProxyError> for Error {
    fn from(e: ProxyError) -> Self {
        Error::Proxy(Box::new(e))
    }
}

#[cfg(feature = "client")]
impl From<crate::target::BadUrl> for Error {
    fn from(e: crate::target::BadUrl) -> Self {
        Error::Url(e.0)
    }
}

impl From<crate::proxy::OpenError> for Error {
    fn from(e: crate::proxy::OpenError) -> Self {
        match e {
            crate::proxy::OpenError::Io(e) => Error::Io(e),
            crate::proxy::OpenError::Proxy(e) => Error::from(e),
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
