//! The opening handshake of RFC 6455 over HTTP/1.1 (§4): the client's upgrade request, the
//! server's checks and its `101 Switching Protocols` answer, and the client's checks of that
//! answer; and over extended CONNECT (RFC 8441 for HTTP/2, RFC 9220 for HTTP/3):
//! [`ConnectRequest`], [`ConnectAccept`], [`connect_refusal`] and
//! [`ClientHandshake::connect_request`] / [`ClientHandshake::check_connect_response`].
//!
//! Subprotocol and permessage-deflate negotiation is one piece of code for both. Once the
//! handshake is over, both ends build a [`Connection`](crate::Connection) from the negotiated
//! parameters: the framing is the same over a TCP connection and over an HTTP/2 stream.

mod client;
mod error;
mod extended_connect;
mod headers;
mod negotiation;
mod refusal;
mod server;

pub use client::{ClientHandshake, Response};
pub use error::HandshakeError;
pub use extended_connect::{connect_refusal, ConnectAccept, ConnectRequest, WEBSOCKET_PROTOCOL};
pub use headers::{HeaderList, Limits};
pub use refusal::Refusal;
pub use server::{http_response, Request};

use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(duplex_proto::handshake::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded (RFC 6455 §4.1).
pub fn generate_key() -> String {
    encode_key(&rand::random::<[u8; 16]>())
}

/// The `Sec-WebSocket-Key` for a 16-byte nonce.
fn encode_key(nonce: &[u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// Whether a comma-separated header value holds `token`, compared without regard to case
/// (`Connection: keep-alive, Upgrade`).
pub fn has_token(value: &str, token: &str) -> bool {
    value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(has_token("keep-alive, Upgrade", "upgrade"));
        assert!(has_token("WebSocket", "websocket"));
        assert!(!has_token("upgrader", "upgrade"));
    }

    #[test]
    fn keys_are_16_bytes() {
        let k = generate_key();
        let raw = base64::engine::general_purpose::STANDARD.decode(&k).unwrap();
        assert_eq!(raw.len(), 16);
        assert_ne!(k, generate_key());
    }
}
