//! The errors of the protocol core.
//!
//! [`ProtocolError`] is what a peer did wrong on an open connection; it carries the close code the
//! RFC names for it, which the connection has already sent. [`SendError`] is what the application
//! asked for that cannot be done. Handshake errors live in [`crate::handshake`].

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
