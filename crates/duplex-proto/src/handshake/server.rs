//! The server's side: parse the request, check it, answer 101 or an HTTP error.

use base64::Engine;

use super::accept_key;
use super::error::HandshakeError;
use super::headers::{HeaderList, Limits};
use super::negotiation;

/// An HTTP request head, which may or may not ask for a WebSocket upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method (`GET`).
    pub method: String,
    /// The request target as sent: path and query (`/chat?room=1`).
    pub target: String,
    /// The minor HTTP version (1 for HTTP/1.1).
    pub http_minor: u8,
    /// The headers.
    pub headers: HeaderList,
}

impl Request {
    /// Parses a request head from the front of `buf`. `Ok(None)`: not complete yet (and within the
    /// limits); otherwise the request and the length of its head.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, HandshakeError> {
        let mut storage = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut req = httparse::Request::new(&mut storage);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                if n > limits.max_head_bytes {
                    return Err(HandshakeError::HeadTooLarge(limits.max_head_bytes));
                }
                let request = Request {
                    method: req.method.unwrap_or_default().to_owned(),
                    target: req.path.unwrap_or_default().to_owned(),
                    http_minor: req.version.unwrap_or(0),
                    headers: HeaderList::from_httparse(req.headers),
                };
                Ok(Some((request, n)))
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > limits.max_head_bytes {
                    Err(HandshakeError::HeadTooLarge(limits.max_head_bytes))
                } else {
                    Ok(None)
                }
            }
            Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooManyHeaders),
            Err(e) => Err(HandshakeError::Malformed(e.to_string())),
        }
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The `Origin` header a browser sends (RFC 6454), for cross-site checks.
    pub fn origin(&self) -> Option<&str> {
        self.headers.get("origin")
    }

    /// The subprotocols the client offers, in its order of preference.
    pub fn protocols(&self) -> Vec<&str> {
        negotiation::offered_protocols(&self.headers)
    }

    /// Whether this asks for a WebSocket (an `Upgrade: websocket` header). Requests that do not can
    /// be answered as plain HTTP on the same port.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.headers.has_token("upgrade", "websocket")
    }

    /// Negotiates permessage-deflate (RFC 7692) from the request's `Sec-WebSocket-Extensions`
    /// offers: the parameters in force and the value to answer in
    /// [`Request::accept_response`], or `None` to answer without it. See
    /// [`DeflateConfig::negotiate`](crate::DeflateConfig::negotiate).
    pub fn negotiate_deflate(&self, config: &crate::DeflateConfig) -> Option<(crate::DeflateParams, String)> {
        negotiation::negotiate_deflate(&self.headers, config)
    }

    /// Checks the request against RFC 6455 §4.2.1 and returns its `Sec-WebSocket-Key`.
    pub fn validate(&self) -> Result<&str, HandshakeError> {
        if self.method != "GET" {
            return Err(HandshakeError::MethodNotGet(self.method.clone()));
        }
        if self.http_minor < 1 {
            return Err(HandshakeError::HttpVersion);
        }
        if self.headers.get("host").is_none() {
            return Err(HandshakeError::MissingHost);
        }
        if !self.is_websocket_upgrade() {
            return Err(HandshakeError::NotWebSocketUpgrade);
        }
        if !self.headers.has_token("connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        let version = self.headers.get("sec-websocket-version");
        if version != Some("13") {
            return Err(HandshakeError::UnsupportedVersion(version.map(str::to_owned)));
        }
        let key = self.headers.get("sec-websocket-key").ok_or(HandshakeError::BadKey)?;
        match base64::engine::general_purpose::STANDARD.decode(key) {
            Ok(raw) if raw.len() == 16 => Ok(key),
            _ => Err(HandshakeError::BadKey),
        }
    }

    /// The `101 Switching Protocols` answer: the accept key, the chosen subprotocol (which must be
    /// one the client offered), negotiated extensions and extra headers.
    pub fn accept_response(
        &self,
        key: &str,
        protocol: Option<&str>,
        extensions: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
        out.extend_from_slice(b"Sec-WebSocket-Accept: ");
        out.extend_from_slice(accept_key(key).as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(p) = protocol {
            push_header(&mut out, "Sec-WebSocket-Protocol", p);
        }
        if let Some(e) = extensions {
            push_header(&mut out, "Sec-WebSocket-Extensions", e);
        }
        for (n, v) in extra_headers {
            push_header(&mut out, n, v);
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    // Header injection guard: a value with CR or LF would start a new header.
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    out.extend_from_slice(clean(name).as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(clean(value).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A complete HTTP/1.1 response with `Content-Length` and `Connection: close` unless the headers
/// say otherwise: for refusals (`403`, `426`, `503`) and plain pages served beside WebSockets.
pub fn http_response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    for (n, v) in headers {
        push_header(&mut out, n, v);
    }
    if !has("content-length") {
        push_header(&mut out, "Content-Length", &body.len().to_string());
    }
    if !has("connection") {
        push_header(&mut out, "Connection", "close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The standard reason phrase of a status code.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(raw: &[u8]) -> Request {
        Request::parse(raw, &Limits::default()).unwrap().unwrap().0
    }

    #[test]
    fn rfc_example_request_is_accepted() {
        let req = parse(RFC_REQUEST);
        assert_eq!(req.validate(), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.protocols(), vec!["chat", "superchat"]);
        let resp = String::from_utf8(req.accept_response("dGhlIHNhbXBsZSBub25jZQ==", Some("chat"), None, &[])).unwrap();
        assert!(resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(resp.contains("Sec-WebSocket-Protocol: chat\r\n"));
    }

    #[test]
    fn partial_and_oversized_heads() {
        assert_eq!(Request::parse(&RFC_REQUEST[..40], &Limits::default()), Ok(None));
        let limits = Limits { max_head_bytes: 64, max_headers: 64 };
        assert_eq!(Request::parse(&RFC_REQUEST[..100], &limits), Err(HandshakeError::HeadTooLarge(64)));
        let few = Limits { max_head_bytes: 8192, max_headers: 3 };
        assert_eq!(Request::parse(RFC_REQUEST, &few), Err(HandshakeError::TooManyHeaders));
    }

    #[test]
    fn each_check_names_its_failure() {
        let swap = |from: &str, to: &str| {
            let req = parse(String::from_utf8_lossy(RFC_REQUEST).replace(from, to).as_bytes());
            req.validate().map(str::to_owned)
        };
        assert!(matches!(swap("GET", "POST"), Err(HandshakeError::MethodNotGet(_))));
        assert_eq!(swap("Host:", "X-Host:"), Err(HandshakeError::MissingHost));
        assert_eq!(swap("Upgrade: websocket", "Upgrade: h2c"), Err(HandshakeError::NotWebSocketUpgrade));
        assert_eq!(
            swap("Connection: Upgrade", "Connection: keep-alive"),
            Err(HandshakeError::MissingConnectionUpgrade)
        );
        assert_eq!(swap("Connection: Upgrade", "Connection: keep-alive, UPGRADE").map(|_| ()), Ok(()));
        assert_eq!(swap("Upgrade: websocket", "Upgrade: WebSocket").map(|_| ()), Ok(()));
        assert_eq!(swap("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), Err(HandshakeError::BadKey));
        let v = swap("Version: 13", "Version: 8");
        assert_eq!(v, Err(HandshakeError::UnsupportedVersion(Some("8".into()))));
        assert_eq!(v.unwrap_err().status(), 426);
        assert_eq!(swap("HTTP/1.1", "HTTP/1.0"), Err(HandshakeError::HttpVersion));
    }

    #[test]
    fn responses_cannot_be_split_by_header_values() {
        let r = String::from_utf8(http_response(403, &[("X-Why".into(), "a\r\nSet-Cookie: x".into())], b"no")).unwrap();
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(!r.contains("\r\nSet-Cookie"));
        assert!(r.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\nno"));
    }
}
