//! A refused upgrade: the HTTP answer that came instead of `101 Switching Protocols`, the one
//! shape both ends use (the client that received it, the server that sent it).

use std::borrow::Cow;
use std::fmt;

use super::headers::HeaderList;
use super::server::{http_response, reason_phrase};

/// An HTTP answer other than `101 Switching Protocols` to an upgrade request (RFC 6455 §4.1: the
/// client must then fail the connection; the status, headers and body say why: 403 for a foreign
/// origin, 401 without credentials, 429 or 503 with `Retry-After`, ...).
///
/// The body is kept up to [`Refusal::MAX_BODY`] bytes, so a peer cannot make us buffer without
/// bound; [`Refusal::body_truncated`] says whether more was sent.
///
/// ```
/// use duplex_proto::handshake::Refusal;
/// let r = Refusal::new(503, &[("Retry-After".into(), "2".into())], b"try again later\n");
/// assert_eq!(r.headers.get("retry-after"), Some("2"));
/// assert_eq!(r.to_string(), "HTTP 503 Service Unavailable: try again later");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The status code.
    pub status: u16,
    /// The reason phrase of the status line (the standard one if the answer had none).
    pub reason: String,
    /// The answer's headers, in order.
    pub headers: HeaderList,
    /// The body, at most [`Refusal::MAX_BODY`] bytes of it.
    pub body: Vec<u8>,
    /// Whether the body was longer than [`Refusal::MAX_BODY`] and cut.
    pub body_truncated: bool,
}

impl Refusal {
    /// How much of a refusal's body is kept: enough for any error page's message, small enough
    /// that an error value stays cheap to hold.
    pub const MAX_BODY: usize = 4096;

    /// A refusal with this status (and its standard reason phrase), headers and body (cut to
    /// [`Refusal::MAX_BODY`]).
    pub fn new(status: u16, headers: &[(String, String)], body: &[u8]) -> Refusal {
        let mut list = HeaderList::default();
        for (n, v) in headers {
            list.push(n.clone(), v.as_bytes().to_vec());
        }
        let mut r = Refusal {
            status,
            reason: reason_phrase(status).to_owned(),
            headers: list,
            body: Vec::new(),
            body_truncated: false,
        };
        r.extend_body(body);
        r
    }

    /// Appends to the body what fits under [`Refusal::MAX_BODY`]; returns false once it is full
    /// (the rest is dropped and [`Refusal::body_truncated`] set).
    pub fn extend_body(&mut self, more: &[u8]) -> bool {
        let room = Self::MAX_BODY - self.body.len();
        if more.len() > room {
            self.body.extend_from_slice(&more[..room]);
            self.body_truncated = true;
            return false;
        }
        self.body.extend_from_slice(more);
        self.body.len() < Self::MAX_BODY
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The `Content-Length` the answer declared, if any.
    pub fn content_length(&self) -> Option<usize> {
        self.headers.get("content-length").and_then(|v| v.parse().ok())
    }

    /// The answer as bytes on the wire (with `Content-Length` and `Connection: close` unless the
    /// headers have them): what a server writes.
    pub fn to_response(&self) -> Vec<u8> {
        let headers: Vec<(String, String)> =
            self.headers.iter().map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned())).collect();
        http_response(self.status, &headers, &self.body)
    }
}

impl fmt::Display for Refusal {
    /// `HTTP 403 Forbidden: <the body's first line>`, the line cut at 200 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.reason)?;
        // An HTML error page (proxies write them) is read as its text: tags dropped, and lines
        // that only repeat the status skipped.
        let text = strip_tags(&self.body_text());
        let status_line = format!("{} {}", self.status, self.reason);
        let said = |l: &&str| !l.is_empty() && *l != self.reason && *l != status_line;
        if let Some(line) = text.lines().map(str::trim).find(said) {
            let cut: String = line.chars().take(200).collect();
            let more = if cut.len() < line.len() { "…" } else { "" };
            write!(f, ": {cut}{more}")?;
        }
        Ok(())
    }
}

/// `text` without its `<...>` markup (an HTML or XML page as plain lines).
fn strip_tags(text: &str) -> String {
    if !text.trim_start().starts_with('<') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_bounded() {
        let mut r = Refusal::new(403, &[], &[b'x'; 100]);
        assert!(!r.body_truncated);
        assert!(!r.extend_body(&vec![b'y'; Refusal::MAX_BODY]));
        assert_eq!(r.body.len(), Refusal::MAX_BODY);
        assert!(r.body_truncated);
        assert!(!r.extend_body(b"z"));
        assert_eq!(r.body.len(), Refusal::MAX_BODY);
    }

    #[test]
    fn display_and_wire_form() {
        let r = Refusal::new(403, &[("X-Why".into(), "origin".into())], b"\n  not from here\nsecond line");
        assert_eq!(r.to_string(), "HTTP 403 Forbidden: not from here");
        let wire = String::from_utf8(r.to_response()).unwrap();
        assert!(wire.starts_with("HTTP/1.1 403 Forbidden\r\nX-Why: origin\r\n"), "{wire}");
        assert!(wire.ends_with("\r\n\r\n\n  not from here\nsecond line"), "{wire}");
        assert_eq!(Refusal::new(500, &[], b"").to_string(), "HTTP 500 Internal Server Error");
        let page = b"<?xml?>\n<html><head><title>401 Unauthorized</title></head>\n<body><h1>Unauthorized</h1>\n<p>Not for you.</p>";
        assert_eq!(Refusal::new(401, &[], page).to_string(), "HTTP 401 Unauthorized: Not for you.");
    }
}
