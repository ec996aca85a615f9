//! Why an opening handshake failed.

use std::fmt;

use super::Refusal;

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
    /// Client: the server answered with this status, headers and body instead of 101 (boxed: it
    /// is large, and errors travel in every `Result`). After [`parse_response`] the body holds
    /// only the bytes already read; the tokio layer reads the rest (bounded) before reporting it.
    ///
    /// [`parse_response`]: super::ClientHandshake::parse_response
    Refused(Box<Refusal>),
    /// Client: `Sec-WebSocket-Accept` does not match the key sent.
    BadAccept,
    /// Client: the server chose a subprotocol that was not offered.
    UnofferedProtocol(String),
    /// Client: the server named an extension that was not offered.
    UnofferedExtension(String),
    /// Extended CONNECT (RFC 8441 §4, RFC 9220): a method other than CONNECT.
    MethodNotConnect(String),
    /// Extended CONNECT: no `:protocol` pseudo-header (a plain CONNECT, asking for a tunnel), or
    /// one naming another protocol than `websocket` (RFC 8441 §5).
    NotWebSocketProtocol(Option<String>),
    /// Extended CONNECT: the pseudo-header `name` (`:scheme`, `:authority` or `:path`) is missing
    /// or holds a value the request cannot have (RFC 8441 §4 and §5: `:scheme` is `http` or
    /// `https`, `:path` the path and query of the target, `:authority` not empty).
    BadPseudoHeader {
        /// The pseudo-header, with its colon.
        name: &'static str,
        /// Its value, `None` if it was missing.
        value: Option<String>,
    },
    /// Client: the server accepted an extension with parameters that are invalid or that the
    /// offer did not allow (RFC 7692 §5: the client must fail the connection).
    BadExtensionResponse(String),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadTooLarge(_) | HandshakeError::TooManyHeaders => 431,
            HandshakeError::MethodNotGet(_) | HandshakeError::MethodNotConnect(_) => 405,
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
            HandshakeError::Refused(r) => write!(f, "the server refused the upgrade: {r}"),
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
            HandshakeError::MethodNotConnect(m) => {
                write!(f, "a WebSocket over HTTP/2 or HTTP/3 is opened with CONNECT (RFC 8441), not {m}")
            }
            HandshakeError::NotWebSocketProtocol(None) => {
                f.write_str("a CONNECT request without :protocol is a tunnel request, not a WebSocket handshake")
            }
            HandshakeError::NotWebSocketProtocol(Some(p)) => {
                write!(f, "extended CONNECT asks for protocol {p:?}; only \"websocket\" is served here")
            }
            HandshakeError::BadPseudoHeader { name, value: None } => {
                write!(f, "the extended CONNECT request has no {name} pseudo-header (RFC 8441 §4 requires it)")
            }
            HandshakeError::BadPseudoHeader { name, value: Some(v) } => {
                write!(f, "the extended CONNECT request's {name} is {v:?}, which a WebSocket handshake cannot have")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<crate::deflate::BadResponse> for HandshakeError {
    fn from(e: crate::deflate::BadResponse) -> Self {
        HandshakeError::BadExtensionResponse(e.0)
    }
}
