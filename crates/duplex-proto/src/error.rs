//! The errors of the protocol core.
//!
//! [`ConnectionError`] is why an open connection ended without a clean close handshake: the peer
//! broke the protocol ([`ProtocolError`], which carries the close code the RFC names for it and
//! which the connection has already sent), the transport ended first (1006), or a deadline passed
//! ([`TimeoutKind`]). [`SendError`] is what the application asked for that cannot be done.
//! Handshake errors live in [`crate::handshake`].

use std::fmt;

use crate::close::CloseCode;
use crate::frame::HeaderError;

/// A violation by the peer. The connection has queued a close frame with [`ProtocolError::code`]
/// and accepts no more data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    kind: Violation,
}

/// What exactly the peer did: matchable, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// The frame header could not be decoded.
    BadHeader(HeaderError),
    /// RSV bits set without an extension that defines them.
    ReservedBits(u8),
    /// A client frame without a mask (RFC 6455 §5.1).
    UnmaskedClientFrame,
    /// A server frame with a mask (RFC 6455 §5.1).
    MaskedServerFrame,
    /// A control frame with FIN unset (RFC 6455 §5.5).
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload (RFC 6455 §5.5).
    ControlFrameTooLong(u64),
    /// A continuation frame with no message to continue (RFC 6455 §5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message was still open (RFC 6455 §5.4).
    ExpectedContinuation,
    /// A close frame whose payload is one byte long or carries a code that may not be sent.
    InvalidCloseCode,
    /// Invalid UTF-8 in a text message or close reason (RFC 6455 §8.1): 1007.
    InvalidUtf8,
    /// A frame larger than [`Config::max_frame_size`](crate::Config::max_frame_size): 1009.
    FrameTooBig {
        /// The frame's payload length.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// A message larger than [`Config::max_message_size`](crate::Config::max_message_size): 1009.
    MessageTooBig {
        /// The size the message would reach.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// A compressed message that could not be inflated: 1007.
    BadCompression(String),
}

impl ProtocolError {
    pub(crate) fn new(kind: Violation) -> Self {
        ProtocolError { kind }
    }

    /// What the peer did.
    pub fn violation(&self) -> &Violation {
        &self.kind
    }

    /// The close code sent to the peer for it.
    pub fn code(&self) -> CloseCode {
        match self.kind {
            Violation::InvalidUtf8 | Violation::BadCompression(_) => CloseCode::INVALID_PAYLOAD,
            Violation::FrameTooBig { .. } | Violation::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The reason sent with the close frame: short, for the peer's logs.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            Violation::BadHeader(_) => "bad frame header",
            Violation::ReservedBits(_) => "reserved bits set",
            Violation::UnmaskedClientFrame => "client frame not masked",
            Violation::MaskedServerFrame => "server frame masked",
            Violation::FragmentedControlFrame => "fragmented control frame",
            Violation::ControlFrameTooLong(_) => "control frame too long",
            Violation::UnexpectedContinuation => "unexpected continuation frame",
            Violation::ExpectedContinuation => "expected continuation frame",
            Violation::InvalidCloseCode => "invalid close code",
            Violation::InvalidUtf8 => "invalid UTF-8",
            Violation::FrameTooBig { .. } => "frame too big",
            Violation::MessageTooBig { .. } => "message too big",
            Violation::BadCompression(_) => "bad compressed data",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Violation::BadHeader(e) => write!(f, "peer sent a bad frame header: {e}"),
            Violation::ReservedBits(b) => {
                write!(f, "peer set reserved bits {b:#04x} that no negotiated extension defines")
            }
            Violation::UnmaskedClientFrame => f.write_str("client sent an unmasked frame"),
            Violation::MaskedServerFrame => f.write_str("server sent a masked frame"),
            Violation::FragmentedControlFrame => f.write_str("peer fragmented a control frame"),
            Violation::ControlFrameTooLong(n) => {
                write!(f, "peer sent a control frame of {n} bytes (at most 125 allowed)")
            }
            Violation::UnexpectedContinuation => {
                f.write_str("peer sent a continuation frame with no message to continue")
            }
            Violation::ExpectedContinuation => {
                f.write_str("peer started a new message before finishing the fragmented one")
            }
            Violation::InvalidCloseCode => f.write_str("peer sent a close frame with an invalid code"),
            Violation::InvalidUtf8 => f.write_str("peer sent invalid UTF-8 in a text message or close reason"),
            Violation::FrameTooBig { size, limit } => write!(
                f,
                "peer sent a frame of {size} bytes, over the limit of {limit} (raise max_frame_size to accept it)"
            ),
            Violation::MessageTooBig { size, limit } => write!(
                f,
                "peer sent a message of at least {size} bytes, over the limit of {limit} (raise max_message_size to accept it)"
            ),
            Violation::BadCompression(e) => write!(f, "peer sent a compressed message that does not inflate: {e}"),
        }?;
        write!(f, " (closed with {})", self.code())
    }
}

impl std::error::Error for ProtocolError {}

/// Why a message or frame could not be queued for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection already sent its close frame (RFC 6455 §5.5.1: no data after close).
    Closed,
    /// A control frame payload over 125 bytes.
    ControlFrameTooLong(usize),
    /// A close code that may not be sent (1005, 1006, 1015, or outside the valid ranges).
    InvalidCloseCode(CloseCode),
    /// A fragment that does not fit the message in progress: a continuation with no open message,
    /// or a new message while one is open.
    FragmentOrder,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closing or closed; nothing more can be sent"),
            SendError::ControlFrameTooLong(n) => {
                write!(f, "a control frame carries at most 125 bytes, not {n}")
            }
            SendError::InvalidCloseCode(c) => {
                write!(f, "close code {c} may not be sent; use 1000-1003, 1007-1014 or 3000-4999")
            }
            SendError::FragmentOrder => {
                f.write_str("fragment out of order: finish the message in progress before starting another")
            }
        }
    }
}

impl std::error::Error for SendError {}

/// Why a connection ended without a clean close handshake, as
/// [`Connection::next_event`](crate::Connection::next_event) reports it (once; no event follows).
///
/// ```
/// use duplex_proto::{Config, Connection, ConnectionError, Role};
/// let mut server = Connection::new(Role::Server, Config::default());
/// server.receive_eof(); // the client's TCP FIN, with no close frame before it
/// assert_eq!(server.next_event(), Err(ConnectionError::AbnormalClosure));
/// assert_eq!(ConnectionError::AbnormalClosure.code().0, 1006);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer broke the protocol; the close frame with [`ProtocolError::code`] was queued.
    Protocol(ProtocolError),
    /// The transport ended (the peer's TCP FIN, an HTTP/2 END_STREAM) before the close handshake
    /// did: close code 1006, which is never sent (RFC 6455 §7.1.5).
    AbnormalClosure,
    /// A deadline passed: which one is in the [`TimeoutKind`].
    Timeout(TimeoutKind),
}

impl ConnectionError {
    /// The close code that describes the end, as a browser's `CloseEvent.code` would: the code
    /// sent for a protocol violation, 1006 otherwise.
    pub fn code(&self) -> CloseCode {
        match self {
            ConnectionError::Protocol(e) => e.code(),
            ConnectionError::AbnormalClosure | ConnectionError::Timeout(_) => CloseCode::ABNORMAL,
        }
    }

    /// The peer's violation, if that is what ended the connection.
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            ConnectionError::Protocol(e) => Some(e.violation()),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Protocol(e) => e.fmt(f),
            ConnectionError::AbnormalClosure => {
                f.write_str("the peer closed the connection without a close frame (1006)")
            }
            ConnectionError::Timeout(kind) => write!(f, "timed out: {kind}"),
        }
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectionError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for ConnectionError {
    fn from(e: ProtocolError) -> Self {
        ConnectionError::Protocol(e)
    }
}

/// Which deadline passed. The core reports [`Keepalive`](TimeoutKind::Keepalive) and
/// [`Close`](TimeoutKind::Close) itself; the others are the opening phase's, which drivers enforce
/// (the `duplex` crate reports them in the same type, so one `match` covers every timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Opening the transport (TCP connect, a proxy's tunnel).
    Connect,
    /// The TLS handshake.
    TlsHandshake,
    /// The opening handshake (RFC 6455 §4): reading the request or the response, or writing it.
    OpeningHandshake,
    /// Nothing arrived within [`Config::pong_timeout`](crate::Config::pong_timeout) of a
    /// keepalive ping: the peer is gone or the path to it is (a half-open connection).
    Keepalive,
    /// The peer did not answer our close frame within
    /// [`Config::close_timeout`](crate::Config::close_timeout).
    Close,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connecting",
            TimeoutKind::TlsHandshake => "the TLS handshake",
            TimeoutKind::OpeningHandshake => "the opening handshake",
            TimeoutKind::Keepalive => "no answer to a keepalive ping within the pong timeout",
            TimeoutKind::Close => "the peer did not answer our close frame within the close timeout",
        })
    }
}
