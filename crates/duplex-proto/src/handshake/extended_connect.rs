//! The opening handshake over extended CONNECT: RFC 8441 for HTTP/2, RFC 9220 for HTTP/3 (which
//! reuses it unchanged). The WebSocket runs on one stream of a multiplexed connection, so there
//! is no `Upgrade`, no `101` and no `Sec-WebSocket-Key`: the request is a CONNECT with the
//! `:protocol` pseudo-header set to `websocket`, and the server accepts with `200`.
//!
//! This module knows nothing of HTTP/2 frames or HPACK: the HTTP layer (hyper, `h2`, an HTTP/3
//! stack) decodes the request into a [`ConnectRequest`] and encodes the answer from a
//! [`ConnectAccept`] or a [`Refusal`]; after that, both ends build a [`Connection`] from the
//! negotiated parameters and feed it the stream's DATA bytes. Subprotocol and permessage-deflate
//! negotiation are the HTTP/1.1 handshake's own code (`negotiation.rs`), so both versions agree.
//!
//! The server:
//!
//! ```
//! use duplex_proto::handshake::{connect_refusal, ConnectRequest, HeaderList};
//! use duplex_proto::DeflateConfig;
//!
//! // RFC 8441 §5.1's example request, as an HTTP/2 library hands it over.
//! let mut headers = HeaderList::default();
//! headers.push("sec-websocket-protocol", "chat, superchat");
//! headers.push("sec-websocket-version", "13");
//! headers.push("origin", "http://www.example.com");
//! let req = ConnectRequest {
//!     method: "CONNECT".into(),
//!     protocol: Some("websocket".into()),
//!     scheme: Some("https".into()),
//!     authority: Some("server.example.com".into()),
//!     path: Some("/chat".into()),
//!     headers,
//! };
//! assert!(req.is_websocket());
//! match req.accept(Some("chat"), &DeflateConfig::default(), &[]) {
//!     Ok(accept) => {
//!         assert_eq!(accept.status, 200);
//!         assert_eq!(accept.headers, [("sec-websocket-protocol".to_owned(), "chat".to_owned())]);
//!         // Send `accept.status` and `accept.headers`, then run a server `Connection` (with
//!         // `accept.deflate`) on the stream.
//!     }
//!     Err(e) => {
//!         let refusal = connect_refusal(&e); // send its status, headers and body instead
//!         # let _ = refusal;
//!     }
//! }
//! ```
//!
//! The client:
//!
//! ```
//! use duplex_proto::handshake::{ClientHandshake, HeaderList};
//!
//! let hs = ClientHandshake::new("server.example.com", "/chat").protocol("chat");
//! let req = hs.connect_request("wss");
//! assert_eq!((req.method.as_str(), req.scheme.as_deref()), ("CONNECT", Some("https")));
//! // ... send it, read the response's status and headers ...
//! let mut headers = HeaderList::default();
//! headers.push("sec-websocket-protocol", "chat");
//! let response = hs.check_connect_response(200, &headers).unwrap();
//! assert_eq!(response.protocol.as_deref(), Some("chat"));
//! ```
//!
//! [`Connection`]: crate::Connection

use super::client::{ClientHandshake, Response};
use super::error::HandshakeError;
use super::headers::HeaderList;
use super::negotiation::{self, check_answer, Agreed, Offer};
use super::refusal::Refusal;
use crate::deflate::{DeflateConfig, DeflateParams};

/// The `:protocol` value that asks for a WebSocket (RFC 8441 §5).
pub const WEBSOCKET_PROTOCOL: &str = "websocket";

/// An extended CONNECT request (RFC 8441 §4): the pseudo-headers and headers of the request
/// HEADERS, as the HTTP/2 or HTTP/3 layer decoded them. A server checks it with
/// [`ConnectRequest::validate`] or answers it with [`ConnectRequest::accept`]; a client gets one
/// from [`ClientHandshake::connect_request`] and sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    /// `:method` (`CONNECT`).
    pub method: String,
    /// `:protocol` (`websocket`); `None` for a plain CONNECT.
    pub protocol: Option<String>,
    /// `:scheme`: `https` for a `wss://` URI, `http` for `ws://`.
    pub scheme: Option<String>,
    /// `:authority`: host and port of the target (what `Host` is in HTTP/1.1).
    pub authority: Option<String>,
    /// `:path`: path and query of the target (`/chat?room=1`).
    pub path: Option<String>,
    /// The regular headers (`origin`, `sec-websocket-version`, `sec-websocket-protocol`,
    /// `sec-websocket-extensions`, cookies ...). Names are compared without regard to case.
    pub headers: HeaderList,
}

/// The server's acceptance of an extended CONNECT: the response HEADERS to send (status 200, no
/// END_STREAM) and what was negotiated, for the [`Connection`](crate::Connection) that runs on
/// the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectAccept {
    /// The status to answer: always 200 (RFC 8441 §5).
    pub status: u16,
    /// The response headers: `sec-websocket-protocol` and `sec-websocket-extensions` when
    /// negotiated, then the extra ones, with lower-case names (HTTP/2 requires them, RFC 9113
    /// §8.2.1) and values without CR, LF or NUL.
    pub headers: Vec<(String, String)>,
    /// The subprotocol chosen, if any.
    pub protocol: Option<String>,
    /// The permessage-deflate parameters in force, if negotiated: give them to
    /// [`Connection::with_deflate`](crate::Connection::with_deflate).
    pub deflate: Option<DeflateParams>,
}

impl ConnectRequest {
    /// Whether this asks for a WebSocket: a CONNECT with `:protocol websocket`. Requests that do not
    /// are ordinary HTTP/2 requests, for the application's other routes.
    pub fn is_websocket(&self) -> bool {
        self.method == "CONNECT" && self.protocol.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(WEBSOCKET_PROTOCOL))
    }

    /// The `origin` header a browser sends (RFC 6454), for the cross-site check the server's origin
    /// policy makes (RFC 6455 §10.2).
    pub fn origin(&self) -> Option<&str> {
        self.headers.get("origin")
    }

    /// The subprotocols the client offers, in its order of preference.
    pub fn protocols(&self) -> Vec<&str> {
        negotiation::offered_protocols(&self.headers)
    }

    /// Negotiates permessage-deflate from the request's `sec-websocket-extensions` offers, exactly
    /// as [`Request::negotiate_deflate`](super::Request::negotiate_deflate) does over HTTP/1.1.
    pub fn negotiate_deflate(&self, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
        negotiation::negotiate_deflate(&self.headers, config)
    }

    /// Checks the request against RFC 8441 §4 and §5: method CONNECT, `:protocol websocket`,
    /// `:scheme` `http` or `https`, a non-empty `:authority` without user info, a `:path` that
    /// starts with `/`, and `sec-websocket-version: 13` (RFC 6455 §4.2.1 item 6, which RFC 8441 §5
    /// keeps). There is no key to check: the `:protocol` pseudo-header replaces it.
    ///
    /// A failure is answered with [`connect_refusal`].
    pub fn validate(&self) -> Result<(), HandshakeError> {
        if self.method != "CONNECT" {
            return Err(HandshakeError::MethodNotConnect(self.method.clone()));
        }
        match self.protocol.as_deref() {
            Some(p) if p.eq_ignore_ascii_case(WEBSOCKET_PROTOCOL) => {}
            other => return Err(HandshakeError::NotWebSocketProtocol(other.map(str::to_owned))),
        }
        let bad = |name: &'static str, value: Option<&String>| HandshakeError::BadPseudoHeader {
            name,
            value: value.cloned(),
        };
        // RFC 8441 §5: "https" for wss URIs and "http" for ws URIs.
        match self.scheme.as_deref() {
            Some(s) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("http") => {}
            _ => return Err(bad(":scheme", self.scheme.as_ref())),
        }
        // RFC 9113 §8.3.1: no user info in :authority for http and https.
        match self.authority.as_deref() {
            Some(a) if !a.is_empty() && !a.contains('@') => {}
            _ => return Err(bad(":authority", self.authority.as_ref())),
        }
        // RFC 8441 §5: the path and query parts of the target URI.
        match self.path.as_deref() {
            Some(p) if p.starts_with('/') => {}
            _ => return Err(bad(":path", self.path.as_ref())),
        }
        let version = self.headers.get("sec-websocket-version");
        if version != Some("13") {
            return Err(HandshakeError::UnsupportedVersion(version.map(str::to_owned)));
        }
        Ok(())
    }

    /// Validates the request ([`ConnectRequest::validate`]) and builds the `200` answer with the
    /// chosen subprotocol (one the client offered, or `None`), permessage-deflate negotiated per
    /// `deflate`, and `extra_headers`.
    ///
    /// Errors: those of [`ConnectRequest::validate`], answered with [`connect_refusal`]; and
    /// [`HandshakeError::UnofferedProtocol`] when `protocol` was not offered, which is the
    /// application's mistake rather than the client's (answer it with 500, or reset the stream).
    pub fn accept(
        &self,
        protocol: Option<&str>,
        deflate: &DeflateConfig,
        extra_headers: &[(String, String)],
    ) -> Result<ConnectAccept, HandshakeError> {
        self.validate()?;
        negotiation::check_chosen_protocol(&self.headers, protocol)?;
        let mut headers = Vec::with_capacity(2 + extra_headers.len());
        if let Some(p) = protocol {
            headers.push(header("sec-websocket-protocol", p));
        }
        let negotiated = self.negotiate_deflate(deflate);
        if let Some((_, answer)) = &negotiated {
            headers.push(header("sec-websocket-extensions", answer));
        }
        headers.extend(extra_headers.iter().map(|(n, v)| header(n, v)));
        Ok(ConnectAccept {
            status: 200,
            headers,
            protocol: protocol.map(str::to_owned),
            deflate: negotiated.map(|(params, _)| params),
        })
    }

    /// The target as a URI, `scheme://authority/path` (for HTTP libraries that build requests
    /// from one); missing parts are left out.
    pub fn uri(&self) -> String {
        let mut uri = String::new();
        if let Some(s) = &self.scheme {
            uri.push_str(s);
            uri.push_str("://");
        }
        uri.push_str(self.authority.as_deref().unwrap_or_default());
        uri.push_str(self.path.as_deref().unwrap_or("/"));
        uri
    }
}

/// The answer to an extended CONNECT that failed [`ConnectRequest::validate`] or
/// [`ConnectRequest::accept`]: the error's status (405, 400, 426 with `sec-websocket-version: 13`
/// as RFC 6455 §4.4 asks, 500 for the application's own mistake), a `text/plain` body saying why,
/// and no HTTP/1.1-only headers (no `Upgrade`, no `Connection`: HTTP/2 forbids them, RFC 9113
/// §8.2.2). Send its `status`, `headers` and `body`.
///
/// ```
/// use duplex_proto::handshake::{connect_refusal, HandshakeError};
/// let r = connect_refusal(&HandshakeError::UnsupportedVersion(Some("8".into())));
/// assert_eq!(r.status, 426);
/// assert_eq!(r.headers.get("sec-websocket-version"), Some("13"));
/// ```
pub fn connect_refusal(error: &HandshakeError) -> Refusal {
    let status = match error {
        HandshakeError::UnofferedProtocol(_) => 500,
        e => e.status(),
    };
    let mut headers = vec![header("content-type", "text/plain; charset=utf-8")];
    if status == 426 {
        headers.push(header("sec-websocket-version", "13"));
    }
    Refusal::new(status, &headers, format!("{error}\n").as_bytes())
}

/// A header for an HTTP/2 or HTTP/3 message: lower-case name, a value without the bytes those
/// versions forbid (CR, LF, NUL: RFC 9113 §8.2.1), so no value can smuggle a second field.
fn header(name: &str, value: &str) -> (String, String) {
    (clean(name).to_ascii_lowercase(), clean(value))
}

/// `s` with CR, LF and NUL replaced by spaces.
fn clean(s: &str) -> String {
    s.replace(['\r', '\n', '\0'], " ")
}

/// Headers a client must not send over HTTP/2 or HTTP/3: connection-specific ones (RFC 9113
/// §8.2.2), `host` (`:authority` carries it), and the HTTP/1.1 handshake's key and accept, which
/// RFC 8441 §5 does not use.
const NOT_SENT: &[&str] = &[
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "host",
    "sec-websocket-key",
];

impl ClientHandshake {
    /// The extended CONNECT request for this handshake (RFC 8441 §5): `:method CONNECT`,
    /// `:protocol websocket`, `:scheme` (`https` for `scheme` `wss` or `https`, else `http`),
    /// `:authority` the host, `:path` the target; headers `sec-websocket-version: 13`, the offered
    /// subprotocols and extensions, and the added headers except those HTTP/2 forbids
    /// (`connection`, `upgrade`, `host` ...). Send it on a new stream of a connection whose peer
    /// announced `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3), without END_STREAM.
    pub fn connect_request(&self, scheme: &str) -> ConnectRequest {
        let secure = scheme.eq_ignore_ascii_case("wss") || scheme.eq_ignore_ascii_case("https");
        let mut headers = HeaderList::default();
        headers.push("sec-websocket-version", "13");
        if !self.protocols.is_empty() {
            headers.push("sec-websocket-protocol", clean(&self.protocols.join(", ")));
        }
        if let Some(e) = self.offered_extensions() {
            headers.push("sec-websocket-extensions", clean(&e));
        }
        for (n, v) in &self.headers {
            let (name, value) = header(n, v);
            if !NOT_SENT.contains(&name.as_str()) {
                headers.push(name, value);
            }
        }
        ConnectRequest {
            method: "CONNECT".into(),
            protocol: Some(WEBSOCKET_PROTOCOL.into()),
            scheme: Some(if secure { "https" } else { "http" }.into()),
            authority: Some(self.host.clone()),
            path: Some(self.target.clone()),
            headers,
        }
    }

    /// Checks the server's answer to [`ClientHandshake::connect_request`]: its status and headers.
    /// A 2xx status accepts (RFC 8441 §5 has the server send 200; RFC 9110 §9.3.6 counts any 2xx
    /// as a CONNECT's success); the subprotocol and extensions must be ones offered and a
    /// permessage-deflate answer acceptable, as over HTTP/1.1. Any other status is
    /// [`HandshakeError::Refused`], with an empty body: the caller may read the stream's body into
    /// it with [`Refusal::extend_body`].
    pub fn check_connect_response(&self, status: u16, headers: &HeaderList) -> Result<Response, HandshakeError> {
        if !(200..300).contains(&status) {
            let mut refusal = Refusal::new(status, &[], &[]);
            refusal.headers = headers.clone();
            return Err(HandshakeError::Refused(Box::new(refusal)));
        }
        let offered_extensions = self.offered_extensions();
        let offer = Offer {
            protocols: &self.protocols,
            extensions: offered_extensions.as_deref(),
            deflate: self.deflate.as_ref(),
        };
        let Agreed { protocol, extensions, deflate } = check_answer(headers, &offer)?;
        Ok(Response { headers: headers.clone(), protocol, extensions, deflate })
    }
}

#[cfg(test)]
#[path = "extended_connect_tests.rs"]
mod tests;
