//! WebSockets inside a hyper (or axum) service (cargo feature `hyper`): the request is one of
//! the service's, the WebSocket a [`duplex::WebSocket`](crate::WebSocket) with everything our own
//! [`Server`](crate::Server) checks and negotiates.
//!
//! [`upgrade`] runs the same decision as [`UpgradeRequest::accept_with`](crate::UpgradeRequest::accept_with)
//! ([`crate::accept`]): the origin policy of [`Config::allowed_origins`], RFC 6455 §4.2.1 (method,
//! version, key; 426 with `Sec-WebSocket-Version: 13`), the subprotocol, permessage-deflate per
//! [`Config::protocol`](crate::Config::protocol), the message limits. It returns the response for
//! the service to send and an [`Upgrading`] future that resolves to the socket once hyper hands
//! the connection over.
//!
//! - HTTP/1.1: `101 Switching Protocols`. Bytes the client sent after its request (a first
//!   frame in the same packet) are replayed before the socket's first read. When hyper served a
//!   `TokioIo<TcpStream>` (or `TokioIo<TlsStream<TcpStream>>`), the socket runs on that stream
//!   itself ([`HyperStream::Plain`] / [`HyperStream::Tls`]), not through hyper's boxed IO.
//! - HTTP/2 (RFC 8441): a `CONNECT` with `:protocol websocket` on a connection served with
//!   `http2().enable_connect_protocol()` is answered `200` (no key); the socket runs on the
//!   stream ([`HyperStream::Upgraded`]), and its end is the stream's END_STREAM.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{body::Incoming, Request, Response};
//!
//! async fn service(mut req: Request<Incoming>, config: Arc<duplex::Config>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     if !duplex::hyper::is_upgrade_request(&req) {
//!         return Ok(Response::new(Full::new(Bytes::from_static(b"not a WebSocket\n"))));
//!     }
//!     let (response, upgrading) = duplex::hyper::upgrade(&mut req, &config);
//!     tokio::spawn(async move {
//!         let Ok(mut ws) = upgrading.await else { return };
//!         while let Some(Ok(msg)) = ws.recv().await {
//!             if ws.send(msg).await.is_err() { break }
//!         }
//!     });
//!     Ok(response)
//! }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::hyper::header::{HeaderName, HeaderValue};
use ::hyper::upgrade::{OnUpgrade, Upgraded};
use ::hyper::{Method, Request, Response, StatusCode, Version};
use bytes::Bytes;
use duplex_proto::handshake::{self, HandshakeError, HeaderList};
use duplex_proto::{DeflateParams, Role};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::accept::{self, Accept, Decision, Handshake};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::socket::WebSocket;
pub use crate::stream::HyperStream;

/// The response body [`upgrade`] answers with (empty on success, plain text on refusal).
pub type Body = Full<Bytes>;

/// Whether the request asks for a WebSocket: HTTP/1.x with `Upgrade: websocket`, or HTTP/2
/// `CONNECT` with `:protocol websocket` (RFC 8441). Other requests are the service's to answer.
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    if req.version() == Version::HTTP_2 || req.version() == Version::HTTP_3 {
        return req.method() == Method::CONNECT
            && protocol_of(req).is_some_and(|p| p.eq_ignore_ascii_case("websocket"));
    }
    req.headers()
        .get_all(::hyper::header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| handshake::has_token(v, "websocket"))
}

/// The request as duplex's handshake sees it (method, target, version, headers; on HTTP/2 the
/// `:protocol`, `:scheme` and `:authority` pseudo-headers under their names, and `Host` from the
/// `:authority`): what
/// [`upgrade`] checks, for an application that wants to look first (offered subprotocols,
/// origin).
pub fn handshake_request<B>(req: &Request<B>) -> handshake::Request {
    head_of(req.method(), req.uri(), req.version(), req.headers(), protocol_of(req))
}

/// [`handshake_request`] for a request taken apart (an extractor's `Parts`).
pub fn handshake_parts(parts: &::hyper::http::request::Parts) -> handshake::Request {
    let protocol = parts.extensions.get::<::hyper::ext::Protocol>().map(|p| p.as_str());
    head_of(&parts.method, &parts.uri, parts.version, &parts.headers, protocol)
}

fn head_of(
    method: &Method,
    uri: &::hyper::Uri,
    version: Version,
    header_map: &::hyper::HeaderMap,
    protocol: Option<&str>,
) -> handshake::Request {
    let mut headers = HeaderList::default();
    for (name, value) in header_map {
        headers.push(name.as_str(), value.as_bytes());
    }
    if version >= Version::HTTP_2 {
        // The pseudo-headers RFC 8441 checks, under their names.
        if let Some(p) = protocol {
            headers.push(":protocol", p.as_bytes());
        }
        if let Some(scheme) = uri.scheme_str() {
            headers.push(":scheme", scheme.as_bytes());
        }
        if let Some(authority) = uri.authority() {
            headers.push(":authority", authority.as_str().as_bytes());
        }
        if headers.get("host").is_none() {
            if let Some(authority) = uri.authority() {
                headers.push("host", authority.as_str().as_bytes());
            }
        }
    }
    handshake::Request {
        method: method.as_str().to_owned(),
        target: uri.path_and_query().map_or("/", |pq| pq.as_str()).to_owned(),
        http_minor: if version <= Version::HTTP_10 { 0 } else { 1 },
        headers,
    }
}

/// Whether [`upgrade_head`] would accept the request as a WebSocket handshake (method, version,
/// key, or RFC 8441's `:protocol`), before the application has chosen anything: the error says
/// what is wrong and [`HandshakeError::status`] what to answer.
pub fn check(head: &handshake::Request, version: Version) -> std::result::Result<(), HandshakeError> {
    accept::validate(head, handshake_kind(version)).map(|_| ())
}

fn handshake_kind(version: Version) -> Handshake {
    if version >= Version::HTTP_2 {
        Handshake::ExtendedConnect
    } else {
        Handshake::Http11
    }
}

fn protocol_of<B>(req: &Request<B>) -> Option<&str> {
    req.extensions().get::<::hyper::ext::Protocol>().map(|p| p.as_str())
}

/// Accepts the upgrade with no subprotocol; see [`upgrade_with`].
pub fn upgrade<B>(req: &mut Request<B>, config: &Arc<Config>) -> (Response<Body>, Upgrading) {
    upgrade_with(req, config, Accept::new())
}

/// Decides on the upgrade (the checks of our own server, with `accept`'s subprotocol, headers
/// and configuration) and returns the response for the service to send and the future of the
/// socket. On a refusal the response says why (403, 400, 426 ...) and the future resolves at once
/// to the error ([`Upgrading::is_refused`]).
///
/// `config` is the server's: its origin policy applies, and the socket runs with it unless
/// `accept` carries another.
pub fn upgrade_with<B>(req: &mut Request<B>, config: &Arc<Config>, accept: Accept) -> (Response<Body>, Upgrading) {
    let head = handshake_request(req);
    let version = req.version();
    upgrade_head(&head, version, ::hyper::upgrade::on(req), config, accept)
}

/// [`upgrade_with`] for a request taken apart earlier (an extractor that keeps the
/// [`handshake_request`], the version and the request's [`OnUpgrade`] until its handler
/// decides, as duplex-axum's `WebSocketUpgrade` does).
pub fn upgrade_head(
    head: &handshake::Request,
    version: Version,
    on_upgrade: OnUpgrade,
    config: &Arc<Config>,
    accept: Accept,
) -> (Response<Body>, Upgrading) {
    match accept::decide(head, handshake_kind(version), None, config, false, accept) {
        Decision::Refuse { status, headers, body, error, .. } => {
            tracing::debug!(?version, error = %error, "WebSocket upgrade refused");
            // Status 0: the application chose a subprotocol the client did not offer; hyper must
            // answer something, and the mistake is the server's.
            let status = if status == 0 { 500 } else { status };
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            add_headers(&mut resp, &headers);
            (resp, Upgrading { state: State::Refused(Some(error)), version, protocol: None })
        }
        Decision::Upgrade(up) => {
            let mut resp = Response::new(Full::default());
            match &up.key {
                Some(key) => {
                    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    let h = resp.headers_mut();
                    h.insert(::hyper::header::UPGRADE, HeaderValue::from_static("websocket"));
                    h.insert(::hyper::header::CONNECTION, HeaderValue::from_static("upgrade"));
                    if let Ok(v) = HeaderValue::from_str(&handshake::accept_key(key)) {
                        h.insert(::hyper::header::SEC_WEBSOCKET_ACCEPT, v);
                    }
                }
                // RFC 8441 §5: a 2xx answers an extended CONNECT; there is no key to prove.
                None => *resp.status_mut() = StatusCode::OK,
            }
            let mut extra = Vec::new();
            if let Some(p) = &up.protocol {
                extra.push(("Sec-WebSocket-Protocol".to_owned(), p.clone()));
            }
            if let Some(e) = &up.extensions {
                extra.push(("Sec-WebSocket-Extensions".to_owned(), e.clone()));
            }
            add_headers(&mut resp, &extra);
            add_headers(&mut resp, &up.headers);
            tracing::debug!(?version, protocol = ?up.protocol, deflate = up.deflate.is_some(), "WebSocket upgrade accepted");
            let protocol = up.protocol.clone();
            let state = State::Waiting { on_upgrade, config: up.config, deflate: up.deflate, protocol: up.protocol };
            (resp, Upgrading { state, version, protocol })
        }
    }
}

fn add_headers(resp: &mut Response<Body>, headers: &[(String, String)]) {
    for (n, v) in headers {
        // A name or value that is not valid HTTP is left out rather than sent broken.
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
            resp.headers_mut().append(n, v);
        }
    }
}

/// The socket to come: resolves once hyper has sent the response and handed the connection over
/// (spawn it: the service must return the response first).
#[must_use = "the socket opens only when this future is awaited"]
pub struct Upgrading {
    state: State,
    version: Version,
    protocol: Option<String>,
}

enum State {
    Refused(Option<Box<Error>>),
    Waiting { on_upgrade: OnUpgrade, config: Arc<Config>, deflate: Option<DeflateParams>, protocol: Option<String> },
    Done,
}

impl std::fmt::Debug for Upgrading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrading")
            .field("version", &self.version)
            .field("protocol", &self.protocol)
            .field("refused", &self.is_refused())
            .finish()
    }
}

impl Upgrading {
    /// Whether the request was refused (the response says why; awaiting gives the error).
    pub fn is_refused(&self) -> bool {
        matches!(self.state, State::Refused(_))
    }

    /// The HTTP version of the request: `HTTP/1.1`, or `HTTP/2` for an extended CONNECT.
    pub fn http_version(&self) -> Version {
        self.version
    }

    /// The subprotocol agreed.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
}

impl Future for Upgrading {
    type Output = Result<WebSocket<HyperStream>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            State::Refused(e) => {
                let e = e.take().map_or(Error::Closed, |e| *e);
                this.state = State::Done;
                Poll::Ready(Err(e))
            }
            State::Waiting { on_upgrade, .. } => {
                let upgraded = match Pin::new(on_upgrade).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                let State::Waiting { config, deflate, protocol, .. } = std::mem::replace(&mut this.state, State::Done)
                else {
                    unreachable!("matched above")
                };
                let upgraded = match upgraded {
                    Ok(u) => u,
                    Err(e) => return Poll::Ready(Err(Error::Io(io::Error::other(e)))),
                };
                let (stream, leftover) = take_apart(upgraded);
                tracing::debug!(version = ?this.version, direct = stream.is_direct(), "WebSocket open");
                let ws = WebSocket::from_upgraded_with_deflate(stream, Role::Server, config, deflate, &leftover)
                    .with_protocol(protocol);
                Poll::Ready(Ok(ws))
            }
            State::Done => Poll::Ready(Err(Error::Closed)),
        }
    }
}

/// The stream hyper served, with the bytes it read past the request, when it is one we know;
/// hyper's boxed IO otherwise (which replays those bytes itself).
fn take_apart(upgraded: Upgraded) -> (HyperStream, Bytes) {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return (HyperStream::Plain(parts.io.into_inner()), parts.read_buf),
        Err(u) => u,
    };
    #[cfg(feature = "tls")]
    let upgraded = match upgraded.downcast::<TokioIo<tokio_rustls::server::TlsStream<TcpStream>>>() {
        Ok(parts) => return (HyperStream::Tls(Box::new(parts.io.into_inner())), parts.read_buf),
        Err(u) => u,
    };
    (HyperStream::Upgraded(TokioIo::new(upgraded)), Bytes::new())
}
