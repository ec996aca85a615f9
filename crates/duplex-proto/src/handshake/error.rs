//! Why an opening handshake failed.

use std::fmt;

/// A failed opening handshake: on the server, what to answer ([`HandshakeError::status`]); on the
/// client, why the server's answer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head is not valid HTTP/1.1.
    Malformed(String),
    /// The head is larger than [`Limits::max_head_bytes`](super::Limits::max_head_bytes).
    HeadTooLarge(usize),
    /// More header lines than [`Limits::max_headers`](super::Limits::max_headers).
    TooManyHeaders,
    /// A method other than GET (RFC 6455 §4.2.1 item 1).
    MethodNotGet(String),
    /// HTTP older than 1.1.
    HttpVersion,
    /// No `Host` header (RFC 6455 §4.2.1 item 2).
    MissingHost,
    /// No `Upgrade: websocket` (item 3): a plain HTTP request, or a broken client.
    NotWebSocketUpgrade,
    /// No `upgrade` token in `Connection` (item 4).
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` missing or not 16 bytes once base64-decoded (item 5).
    BadKey,
    /// `Sec-WebSocket-Version` missing or not 13 (item 6): answered with 426 and the version we speak.
    UnsupportedVersion(Option<String>),
    /// Client: the server answered with this status instead of 101.
    UnexpectedStatus(u16, String),
    /// Client: `Sec-WebSocket-Accept` does not match the key sent.
    BadAccept,
    /// Client: the server chose a subprotocol that was not offered.
    UnofferedProtocol(String),
    /// Client: the server named an extension that was not offered.
    UnofferedExtension(String),
    /// Client: the server accepted an extension with parameters that are invalid or that the
    /// offer did not allow (RFC 7692 §5: the client must fail the connection).
    BadExtensionResponse(String),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadTooLarge(_) | HandshakeError::TooManyHeaders => 431,
            HandshakeError::MethodNotGet(_) => 405,
            HandshakeError::HttpVersion => 505,
            HandshakeError::UnsupportedVersion(_) | HandshakeError::NotWebSocketUpgrade => 426,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Malformed(e) => write!(f, "malformed HTTP head: {e}"),
            HandshakeError::HeadTooLarge(n) => write!(f, "HTTP head larger than {n} bytes"),
            HandshakeError::TooManyHeaders => f.write_str("too many HTTP headers"),
            HandshakeError::MethodNotGet(m) => write!(f, "a WebSocket handshake must use GET, not {m}"),
            HandshakeError::HttpVersion => f.write_str("a WebSocket handshake needs HTTP/1.1 or later"),
            HandshakeError::MissingHost => f.write_str("the handshake request has no Host header"),
            HandshakeError::NotWebSocketUpgrade => {
                f.write_str("not a WebSocket upgrade request (no `Upgrade: websocket` header)")
            }
            HandshakeError::MissingConnectionUpgrade => {
                f.write_str("the Connection header does not contain the `upgrade` token")
            }
            HandshakeError::BadKey => f.write_str("Sec-WebSocket-Key is missing or is not 16 bytes of base64"),
            HandshakeError::UnsupportedVersion(v) => {
                write!(f, "Sec-WebSocket-Version {} is not supported; only 13 is", v.as_deref().unwrap_or("(missing)"))
            }
            HandshakeError::UnexpectedStatus(s, reason) => write!(
                f,
                "the server answered {s} {reason} instead of 101 Switching Protocols: is this a WebSocket endpoint?"
            ),
            HandshakeError::BadAccept => f.write_str("the server's Sec-WebSocket-Accept does not match our key"),
            HandshakeError::UnofferedProtocol(p) => {
                write!(f, "the server chose subprotocol {p:?}, which we did not offer")
            }
            HandshakeError::UnofferedExtension(e) => {
                write!(f, "the server named extension {e:?}, which we did not offer")
            }
            HandshakeError::BadExtensionResponse(why) => {
                write!(f, "the server's permessage-deflate answer is not acceptable: {why}")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}
