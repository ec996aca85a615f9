//! The server's decision on an upgrade request, shared by every way a request reaches us: our own
//! [`Server`](crate::Server) (HTTP/1.1 read off the socket) and [`crate::hyper`] (HTTP/1.1
//! `Upgrade` or HTTP/2 extended CONNECT that hyper parsed). One function, `decide`, checks the
//! origin, the shutdown, RFC 6455 §4.2.1 (or RFC 8441 §4), the chosen subprotocol, and negotiates
//! permessage-deflate; each caller only writes the answer in its own form.

use std::net::SocketAddr;
use std::sync::Arc;

use duplex_proto::handshake::{ConnectRequest, HandshakeError, Refusal, Request};
use duplex_proto::DeflateParams;

use crate::config::Config;
use crate::error::Error;
use crate::metrics::{self, Rejection};
use crate::origin;

/// How to accept an upgrade: the subprotocol and extra response headers.
#[derive(Clone, Debug, Default)]
pub struct Accept {
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) config: Option<Config>,
}

impl Accept {
    /// Accept with no subprotocol and no extra headers.
    ///
    /// ```
    /// let accept = duplex::Accept::new().protocol("chat.v1").header("Set-Cookie", "session=1");
    /// # let _ = accept;
    /// ```
    pub fn new() -> Self {
        Accept::default()
    }

    /// Chooses a subprotocol; it must be one the client offered.
    pub fn protocol(mut self, p: impl Into<String>) -> Self {
        self.protocol = Some(p.into());
        self
    }

    /// Adds a header to the 101 response (`Set-Cookie`, ...).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Uses another configuration for this connection (larger limits for a trusted peer, ...).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }
}

/// Which opening handshake the request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "hyper"), allow(dead_code, reason = "only hyper serves HTTP/2"))]
pub(crate) enum Handshake {
    /// RFC 6455 §4: `GET` with `Upgrade: websocket` and a key, answered 101.
    Http11,
    /// RFC 8441 §4: HTTP/2 `CONNECT` with `:protocol websocket` (the request's pseudo-headers are
    /// in its headers under their names), answered 200, no key.
    ExtendedConnect,
}

/// What to answer.
pub(crate) enum Decision {
    /// Answer with this status, headers and body, then fail with `error` (or, if
    /// `propagate_write_error`, with the write's own error first). `status` 0: write nothing,
    /// drop the connection (the application chose a subprotocol the client did not offer).
    Refuse {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        error: Box<Error>,
        propagate_write_error: bool,
    },
    /// Upgrade.
    Upgrade(Box<Upgrade>),
}

/// An accepted upgrade: what the answer says and what the connection runs with.
pub(crate) struct Upgrade {
    /// `Sec-WebSocket-Key` (HTTP/1.1 only).
    pub key: Option<String>,
    pub protocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` answer, when permessage-deflate was agreed.
    pub extensions: Option<String>,
    pub headers: Vec<(String, String)>,
    pub config: Arc<Config>,
    pub deflate: Option<DeflateParams>,
}

fn refusal(status: u16, body: &str) -> Decision {
    let headers = vec![("Content-Type".to_owned(), "text/plain; charset=utf-8".to_owned())];
    let error = Error::Refused(Box::new(Refusal::new(status, &headers, body.as_bytes())));
    Decision::Refuse {
        status,
        headers,
        body: body.as_bytes().to_vec(),
        error: Box::new(error),
        propagate_write_error: true,
    }
}

/// Checks `request` and decides: origin against [`Config::allowed_origins`], the shutdown,
/// the handshake's own rules, the subprotocol `accept` chose (it must have been offered), and
/// permessage-deflate per the configuration. Refusals are counted (`metrics`) and logged.
pub(crate) fn decide(
    request: &Request,
    handshake: Handshake,
    peer: Option<SocketAddr>,
    server_config: &Arc<Config>,
    shutting_down: bool,
    accept: Accept,
) -> Decision {
    if let Some(origin) = request.origin() {
        if !server_config.allowed_origins.is_empty() && !origin::is_allowed(&server_config.allowed_origins, origin) {
            tracing::info!(peer = ?peer, %origin, "refused: origin not allowed");
            metrics::rejected(Rejection::Origin);
            return refusal(403, &format!("origin {origin} may not open a WebSocket here\n"));
        }
    }
    if shutting_down {
        metrics::rejected(Rejection::ShuttingDown);
        return refusal(503, "the server is shutting down\n");
    }
    let key = match validate(request, handshake) {
        Ok(k) => k,
        Err(e) => {
            metrics::rejected(Rejection::BadRequest);
            let mut headers = vec![("Content-Type".to_owned(), "text/plain; charset=utf-8".to_owned())];
            if e.status() == 426 {
                headers.push(("Sec-WebSocket-Version".into(), "13".into()));
                if handshake == Handshake::Http11 {
                    headers.push(("Upgrade".into(), "websocket".into()));
                }
            }
            return Decision::Refuse {
                status: e.status(),
                headers,
                body: format!("{e}\n").into_bytes(),
                error: Box::new(Error::Handshake(e)),
                propagate_write_error: false,
            };
        }
    };
    if let Some(p) = &accept.protocol {
        if !request.protocols().contains(&p.as_str()) {
            // Our mistake, not the client's: nothing is written, the connection is dropped.
            return Decision::Refuse {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                error: Box::new(Error::Handshake(HandshakeError::UnofferedProtocol(p.clone()))),
                propagate_write_error: false,
            };
        }
    }
    let config = accept.config.map(Arc::new).unwrap_or_else(|| server_config.clone());
    // permessage-deflate (RFC 7692): the first acceptable offer, per `config.protocol.deflate`.
    let (deflate, extensions) = match request.negotiate_deflate(&config.protocol.deflate) {
        Some((params, answer)) => (Some(params), Some(answer)),
        None => (None, None),
    };
    Decision::Upgrade(Box::new(Upgrade {
        key,
        protocol: accept.protocol,
        extensions,
        headers: accept.headers,
        config,
        deflate,
    }))
}

/// The handshake's own rules (RFC 6455 §4.2.1, or RFC 8441 §4-5): the key for HTTP/1.1.
pub(crate) fn validate(request: &Request, handshake: Handshake) -> Result<Option<String>, HandshakeError> {
    match handshake {
        Handshake::Http11 => request.validate().map(|k| Some(k.to_owned())),
        // RFC 8441 §4-5, duplex-proto's check: no key (the stream is the server's agreement).
        Handshake::ExtendedConnect => extended_connect(request).validate().map(|()| None),
    }
}

/// The request as RFC 8441's handshake sees it: the pseudo-headers an HTTP/2 layer put in the
/// headers under their names (`:protocol`, `:scheme`, `:authority`; see
/// `duplex::hyper::handshake_request`), the target as `:path`.
fn extended_connect(request: &Request) -> ConnectRequest {
    let pseudo = |name: &str| request.headers.get(name).map(str::to_owned);
    ConnectRequest {
        method: request.method.clone(),
        protocol: pseudo(":protocol"),
        scheme: pseudo(":scheme"),
        authority: pseudo(":authority").or_else(|| pseudo("host")),
        path: Some(request.target.clone()),
        headers: request.headers.clone(),
    }
}
