//! The client's side: the upgrade request and the checks of the server's answer.

use super::error::HandshakeError;
use super::headers::{HeaderList, Limits};
use super::negotiation::{check_answer, Agreed, Offer};
use super::refusal::Refusal;
use super::server::reason_phrase;
use super::{accept_key, generate_key};
use crate::deflate::{DeflateConfig, DeflateParams};

/// A client's opening handshake: build it, write [`ClientHandshake::request`], then feed the
/// answer to [`ClientHandshake::parse_response`].
///
/// ```
/// use duplex_proto::handshake::ClientHandshake;
/// let hs = ClientHandshake::new("example.com:8080", "/chat").protocol("chat");
/// let req = String::from_utf8(hs.request()).unwrap();
/// assert!(req.starts_with("GET /chat HTTP/1.1\r\nHost: example.com:8080\r\n"));
/// ```
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    pub(super) host: String,
    pub(super) target: String,
    key: String,
    pub(super) protocols: Vec<String>,
    extensions: Option<String>,
    pub(super) deflate: Option<DeflateConfig>,
    pub(super) headers: Vec<(String, String)>,
    limits: Limits,
}

/// The server's accepted answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The headers of the 101 response.
    pub headers: HeaderList,
    /// The subprotocol the server chose, one of those offered.
    pub protocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` value the server answered, if any.
    pub extensions: Option<String>,
    /// The permessage-deflate parameters in force, if it was offered with
    /// [`ClientHandshake::deflate`] and the server accepted it: give them to
    /// [`Connection::with_deflate`](crate::Connection::with_deflate).
    pub deflate: Option<DeflateParams>,
}

impl ClientHandshake {
    /// A handshake for `target` (path and query) on `host` (the `Host` header: host and port if not
    /// the default), with a fresh random key.
    pub fn new(host: impl Into<String>, target: impl Into<String>) -> Self {
        let target = target.into();
        ClientHandshake {
            host: host.into(),
            target: if target.is_empty() { "/".into() } else { target },
            key: generate_key(),
            protocols: Vec::new(),
            extensions: None,
            deflate: None,
            headers: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// Offers a subprotocol (in order of preference).
    pub fn protocol(mut self, p: impl Into<String>) -> Self {
        self.protocols.push(p.into());
        self
    }

    /// Offers extensions (the `Sec-WebSocket-Extensions` value).
    pub fn extensions(mut self, value: impl Into<String>) -> Self {
        self.extensions = Some(value.into());
        self
    }

    /// Offers permessage-deflate as `config` describes ([`DeflateConfig::offer`]), unless it is
    /// disabled; the server's answer is checked by [`ClientHandshake::parse_response`] and the
    /// result put in [`Response::deflate`]. Nothing is offered when built without the cargo
    /// feature `deflate`.
    pub fn deflate(mut self, config: &DeflateConfig) -> Self {
        self.deflate = (config.enabled && crate::deflate::AVAILABLE).then(|| config.clone());
        self
    }

    /// Adds a header (`Authorization`, `Origin`, cookies ...).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the limits on the answer's head.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Draws the key from `rng` instead of the thread's CSPRNG: for tests that replay a session
    /// byte for byte with a seeded generator. RFC 6455 §4.1 asks for a key that is randomly
    /// selected for each connection: leave the default in production.
    pub fn key_from(mut self, rng: &mut impl rand::RngCore) -> Self {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        self.key = super::encode_key(&nonce);
        self
    }

    /// The key this handshake sends.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The request bytes.
    pub fn request(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        out.push_str(&format!("GET {} HTTP/1.1\r\nHost: {}\r\n", self.target, self.host));
        out.push_str("Upgrade: websocket\r\nConnection: Upgrade\r\n");
        out.push_str(&format!("Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n", self.key));
        if !self.protocols.is_empty() {
            out.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", self.protocols.join(", ")));
        }
        if let Some(e) = self.offered_extensions() {
            out.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
        }
        for (n, v) in &self.headers {
            let v = v.replace(['\r', '\n'], " ");
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// Everything offered in `Sec-WebSocket-Extensions`: permessage-deflate first, then the rest.
    pub(super) fn offered_extensions(&self) -> Option<String> {
        match (self.deflate.as_ref().map(DeflateConfig::offer), &self.extensions) {
            (Some(d), Some(e)) => Some(format!("{d}, {e}")),
            (Some(d), None) => Some(d),
            (None, e) => e.clone(),
        }
    }

    /// Parses and checks the server's answer (RFC 6455 §4.1, the client's checks). `Ok(None)`: the
    /// head is not complete yet. On success, also the length of the head: the bytes after it are
    /// already WebSocket frames.
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        let mut storage = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut resp = httparse::Response::new(&mut storage);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if buf.len() > self.limits.max_head_bytes {
                    Err(HandshakeError::HeadTooLarge(self.limits.max_head_bytes))
                } else {
                    Ok(None)
                };
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        let headers = HeaderList::from_httparse(resp.headers);
        if status != 101 {
            let reason = resp.reason.filter(|r| !r.is_empty()).unwrap_or(reason_phrase(status));
            let mut refusal = Refusal::new(status, &[], &[]);
            refusal.reason = reason.to_owned();
            refusal.headers = headers;
            let body = &buf[n..];
            refusal.extend_body(&body[..body.len().min(refusal.content_length().unwrap_or(usize::MAX))]);
            return Err(HandshakeError::Refused(Box::new(refusal)));
        }
        if !headers.has_token("upgrade", "websocket") {
            return Err(HandshakeError::NotWebSocketUpgrade);
        }
        if !headers.has_token("connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        if headers.get("sec-websocket-accept") != Some(accept_key(&self.key).as_str()) {
            return Err(HandshakeError::BadAccept);
        }
        let offered_extensions = self.offered_extensions();
        let offer = Offer {
            protocols: &self.protocols,
            extensions: offered_extensions.as_deref(),
            deflate: self.deflate.as_ref(),
        };
        let Agreed { protocol, extensions, deflate } = check_answer(&headers, &offer)?;
        Ok(Some((Response { headers, protocol, extensions, deflate }, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(hs: &ClientHandshake, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(hs.key())
        )
        .into_bytes()
    }

    #[test]
    fn accepts_a_correct_answer_and_returns_leftover_position() {
        let hs = ClientHandshake::new("h", "/").protocol("chat");
        let mut a = answer(&hs, "Sec-WebSocket-Protocol: chat\r\n");
        let head = a.len();
        a.extend_from_slice(&[0x81, 0x00]);
        let (resp, n) = hs.parse_response(&a).unwrap().unwrap();
        assert_eq!(n, head);
        assert_eq!(resp.protocol.as_deref(), Some("chat"));
        assert_eq!(hs.parse_response(&a[..20]), Ok(None));
    }

    #[test]
    #[cfg(feature = "deflate")]
    fn deflate_offer_and_answer() {
        let hs = ClientHandshake::new("h", "/").deflate(&DeflateConfig::default()).extensions("x-other");
        let req = String::from_utf8(hs.request()).unwrap();
        assert!(req.contains("\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; client_max_window_bits=11, x-other\r\n"));
        let a = answer(
            &hs,
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=10\r\n",
        );
        let (resp, _) = hs.parse_response(&a).unwrap().unwrap();
        let p = resp.deflate.unwrap();
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        // No answer: no compression.
        let (resp, _) = hs.parse_response(&answer(&hs, "")).unwrap().unwrap();
        assert_eq!(resp.deflate, None);
        // Disabled: nothing offered, so an answer naming it is refused.
        let off = ClientHandshake::new("h", "/").deflate(&DeflateConfig::default().enabled(false));
        assert!(!String::from_utf8(off.request()).unwrap().contains("Extensions"));
        assert_eq!(
            off.parse_response(&answer(&off, "Sec-WebSocket-Extensions: permessage-deflate\r\n")),
            Err(HandshakeError::UnofferedExtension("permessage-deflate".into()))
        );
    }

    #[test]
    fn refuses_wrong_answers() {
        let hs = ClientHandshake::new("h", "/");
        let bad_accept =
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: xxx\r\n\r\n";
        assert_eq!(hs.parse_response(bad_accept), Err(HandshakeError::BadAccept));
        assert_eq!(
            hs.parse_response(&answer(&hs, "Sec-WebSocket-Protocol: x\r\n")),
            Err(HandshakeError::UnofferedProtocol("x".into()))
        );
        assert_eq!(
            hs.parse_response(&answer(&hs, "Sec-WebSocket-Extensions: permessage-deflate\r\n")),
            Err(HandshakeError::UnofferedExtension("permessage-deflate".into()))
        );
        // Without the codec nothing is offered, and the answer above is the right refusal.
        #[cfg(feature = "deflate")]
        {
            let offered = ClientHandshake::new("h", "/").deflate(&DeflateConfig::default());
            assert!(matches!(
                offered.parse_response(&answer(&offered, "Sec-WebSocket-Extensions: permessage-deflate; x\r\n")),
                Err(HandshakeError::BadExtensionResponse(_))
            ));
        }
        let not_found = b"HTTP/1.1 404 Nope\r\nContent-Length: 4\r\nRetry-After: 2\r\n\r\ngone and more";
        match hs.parse_response(not_found) {
            Err(HandshakeError::Refused(r)) => {
                assert_eq!((r.status, r.reason.as_str(), r.body.as_slice()), (404, "Nope", &b"gone"[..]));
                assert_eq!(r.headers.get("retry-after"), Some("2"));
            }
            other => panic!("{other:?}"),
        }
    }
}
