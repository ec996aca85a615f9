//! One accepted connection before it is a WebSocket: its request read and checked
//! ([`Incoming`]), then upgraded, answered or refused ([`UpgradeRequest`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use duplex_proto::handshake::{http_response, Limits, Refusal, Request};
use duplex_proto::DeflateParams;
use duplex_proto::Role;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use crate::accept::{self, Accept, Handshake};
use crate::config::Config;
use crate::error::{Error, Result, TimeoutKind};

use crate::metrics::{self, Rejection};
use crate::shutdown::Permit;
use crate::socket::WebSocket;
use crate::trusted_proxy::{read_proxy_header, TrustedProxies};
use duplex_proto::proxy_header::ProxyHeader;

use super::Prelude;

/// An accepted connection whose HTTP request has not been read yet (nor, on a TLS server, its
/// TLS handshake run).
#[derive(Debug)]
pub struct Incoming<S> {
    io: S,
    peer: SocketAddr,
    config: Arc<Config>,
    deadline: Instant,
    pub(super) prelude: Option<Prelude<S>>,
    /// Its place in the server's count of connections.
    pub(super) permit: Permit,
    /// The per-address limits to check before anything else.
    #[cfg(feature = "ip-limits")]
    pub(super) ip_limiter: Option<Arc<crate::ip_limit::IpLimiter>>,
    /// Set when the peer is a trusted proxy: its word on the client's address is taken.
    pub(super) trusted: Option<Arc<TrustedProxies>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// Wraps a transport accepted elsewhere (a TLS stream, a Unix socket).
    pub fn new(io: S, peer: SocketAddr, config: Arc<Config>) -> Self {
        let deadline = Instant::now() + config.handshake_timeout;
        Incoming {
            io,
            peer,
            config,
            deadline,
            prelude: None,
            permit: Permit::none(),
            #[cfg(feature = "ip-limits")]
            ip_limiter: None,
            trusted: None,
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Reads the request head within the handshake timeout. A head that is malformed or over the
    /// limits is answered (400, 431) here, and the error returned.
    ///
    /// On a TLS server this first runs the TLS handshake, under the same timeout: its failures
    /// are [`Error::Tls`] (a plain-HTTP client is answered 400 "This port speaks TLS"), and a
    /// client that does not finish it in time gets [`Error::Timeout`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use duplex::{Client, Config, Incoming, Target};
    /// # async fn handshake() -> duplex::Result<()> {
    /// // A client and a server over an in-memory stream (a TCP connection in real use).
    /// let (c, s) = tokio::io::duplex(4096);
    /// let target = Target::parse("ws://example.test/chat")?;
    /// let client = tokio::spawn(async move {
    ///     let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    ///     Client::new().protocol("chat.v1").handshake(c, &target, deadline).await
    /// });
    /// let incoming = Incoming::new(s, "127.0.0.1:1".parse().unwrap(), Arc::new(Config::default()));
    /// let req = incoming.request().await?;
    /// assert_eq!(req.request().path(), "/chat");
    /// assert_eq!(req.request().protocols(), ["chat.v1"]);
    /// # let _ = req.reject(404, "no").await; let _ = client.await;
    /// # Ok(()) }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() { handshake().await.unwrap() }
    /// ```
    #[allow(clippy::manual_async_fn, reason = "an async fn would hold a second copy of its arguments")]
    pub fn request(mut self) -> impl Future<Output = Result<UpgradeRequest<S>>> {
        // An async block, not an async fn: it works on `self` in place instead of keeping a
        // second copy. Boxed: the caller's task (every connection's) then holds a pointer while
        // the handshake runs, not these 520 bytes for as long as the connection lives (a
        // future is as large as its largest await point, and the handshake's is the largest).
        Box::pin(async move {
            // No locals held across the awaits below (they would enlarge every connection's
            // future): what is left of `trusted` and `ip_limiter` stays in `self`.
            if self.trusted.as_ref().is_some_and(|t| t.speaks_proxy_protocol()) {
                self.trusted = None; // its word is the PROXY header, not request headers
                                     // Boxed, like the refusals below: rare paths must not enlarge this future, which
                                     // lives in every connection's task.
                match timeout_at(self.deadline, Box::pin(read_proxy_header(&mut self.io))).await {
                    Ok(Ok(ProxyHeader::Proxied { source, .. })) => {
                        tracing::debug!(proxy = %self.peer, client = %source, "PROXY protocol header");
                        self.peer = source;
                    }
                    Ok(Ok(ProxyHeader::Local)) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, error = %e, "refused: no valid PROXY protocol header");
                        metrics::rejected(Rejection::Proxy);
                        return Err(e);
                    }
                    Err(_) => {
                        metrics::rejected(Rejection::Timeout);
                        return Err(Error::Timeout(TimeoutKind::OpeningHandshake));
                    }
                }
            }
            // An HTTP proxy's own address says nothing about its clients: the limits wait for its
            // headers (`self.trusted` is still set for such a proxy).
            #[cfg(feature = "ip-limits")]
            if self.trusted.is_none() {
                if let Some(limiter) = self.ip_limiter.take() {
                    match limiter.check(self.peer.ip()) {
                        Ok(permit) => self.permit.ip = Some(permit),
                        Err(over) => return Err(Box::pin(self.refuse_over_ip_limit(over, true)).await),
                    }
                }
            }
            if let Some(Prelude(prelude)) = self.prelude.take() {
                match timeout_at(self.deadline, prelude(self.io)).await {
                    Ok(Ok(io)) => self.io = io,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                        metrics::rejected(Rejection::Tls);
                        return Err(e);
                    }
                    Err(_) => {
                        tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                        metrics::rejected(Rejection::Timeout);
                        return Err(Error::Timeout(TimeoutKind::TlsHandshake));
                    }
                }
            }
            // Every await below holds only this task's small state: a future is as large as its
            // largest await point, and this one lives in every connection's task.
            let parsed = timeout_at(self.deadline, read_head(&mut self.io, &self.config.handshake_limits)).await;
            let (resp, error) = match parsed {
                Ok(Ok((request, leftover))) => {
                    if let Some(client) = self.trusted.take().and_then(|t| t.client_from_headers(&request)) {
                        tracing::debug!(proxy = %self.peer, %client, "client address from the proxy's headers");
                        self.peer = SocketAddr::new(client, 0);
                    }
                    #[cfg(feature = "ip-limits")]
                    if let Some(limiter) = self.ip_limiter.take() {
                        match limiter.check(self.peer.ip()) {
                            Ok(permit) => self.permit.ip = Some(permit),
                            Err(over) => return Err(Box::pin(self.refuse_over_ip_limit(over, false)).await),
                        }
                    }
                    let limit = self.config.max_connections;
                    if self.permit.active().is_none_or(|active| active <= limit) {
                        return Ok(UpgradeRequest {
                            io: self.io,
                            peer: self.peer,
                            request,
                            leftover,
                            config: self.config,
                            deadline: self.deadline,
                            permit: self.permit,
                        });
                    }
                    tracing::warn!(peer = %self.peer, "refused: {limit} connections is the limit");
                    metrics::rejected(Rejection::MaxConnections);
                    refusal(503, "the server is at its connection limit; try again later\n", &[])
                }
                Ok(Err(Error::Handshake(e))) => {
                    tracing::debug!(peer = %self.peer, error = %e, "bad HTTP request");
                    metrics::rejected(Rejection::BadRequest);
                    (plain_response(e.status(), &format!("{e}\n"), &[]), Error::Handshake(e))
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "handshake timed out");
                    metrics::rejected(Rejection::Timeout);
                    return Err(Error::Timeout(TimeoutKind::OpeningHandshake));
                }
            };
            let _ = answer(&mut self.io, self.deadline, &resp).await;
            Err(error)
        })
    }
}

#[cfg(feature = "ip-limits")]
impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// Refuses a connection over its address's limit: `429 Too Many Requests` with
    /// `Retry-After` on a plain connection; on a TLS one, nothing (it is closed before the TLS
    /// handshake: a 429 in clear text would reach no TLS client).
    /// `before_request`: nothing was read yet (and, on TLS, the TLS handshake has not run).
    async fn refuse_over_ip_limit(&mut self, over: crate::ip_limit::IpRefusal, before_request: bool) -> Error {
        use crate::ip_limit::IpRefusal;
        metrics::rejected(match over {
            IpRefusal::TooManyConnections { .. } => Rejection::PerIp,
            IpRefusal::RateLimited { .. } => Rejection::Rate,
        });
        tracing::debug!(peer = %self.peer, "refused: {over}");
        let secs = over.retry_after().as_secs_f64().ceil() as u64;
        let (resp, error) =
            refusal(429, &format!("{over}; try again in {secs}s\n"), &[("Retry-After".into(), secs.to_string())]);
        if !before_request {
            let _ = answer(&mut self.io, self.deadline, &resp).await;
        } else if self.prelude.is_none() {
            answer_and_drain(&mut self.io, self.deadline, &resp).await;
        }
        error
    }
}

/// Writes a refusal sent before the request was read, half-closes, and reads (and drops) what
/// the client sends meanwhile for a moment: closing with its request unread would make the
/// kernel send a reset, which can destroy the answer before the client reads it.
#[cfg(feature = "ip-limits")]
async fn answer_and_drain<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, deadline: Instant, resp: &[u8]) {
    /// How long, and how much, to read after the answer.
    const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);
    const DRAIN_BYTES: usize = 64 * 1024;
    if answer(io, deadline, resp).await.is_err() {
        return;
    }
    let until = deadline.min(Instant::now() + DRAIN_TIME);
    let _ = timeout_at(until, async {
        let mut drained = 0;
        // On the heap: this future is part of every connection task's handshake future.
        let mut buf = vec![0u8; 1024];
        while drained < DRAIN_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Reads a request head: the parsed request and the bytes read past it.
async fn read_head<S: AsyncRead + Unpin>(io: &mut S, limits: &Limits) -> Result<(Request, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        match Request::parse(&buf, limits) {
            Ok(Some((request, head_len))) => {
                buf.drain(..head_len);
                return Ok((request, buf));
            }
            Ok(None) => {}
            Err(e) => return Err(Error::Handshake(e)),
        }
        // Straight into `buf`: a stack array here would be held in every connection's task.
        buf.reserve(2048);
        if io.read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection before the end of its request",
            )));
        }
    }
}

/// A refusal with a plain-text body: the bytes to write, and the [`Error::Refused`] that reports
/// the same answer to the server's code.
fn refusal(status: u16, body: &str, extra: &[(String, String)]) -> (Vec<u8>, Error) {
    let mut headers = vec![("Content-Type".to_owned(), "text/plain; charset=utf-8".to_owned())];
    headers.extend_from_slice(extra);
    let refusal = Refusal::new(status, &headers, body.as_bytes());
    (refusal.to_response(), Error::Refused(Box::new(refusal)))
}

/// A plain-text HTTP response.
fn plain_response(status: u16, body: &str, extra: &[(String, String)]) -> Vec<u8> {
    let mut headers = vec![("Content-Type".to_owned(), "text/plain; charset=utf-8".to_owned())];
    headers.extend_from_slice(extra);
    http_response(status, &headers, body.as_bytes())
}

/// Writes an HTTP answer within the deadline and closes our side of the connection.
async fn answer<S: AsyncWrite + Unpin>(io: &mut S, deadline: Instant, resp: &[u8]) -> Result<()> {
    match timeout_at(deadline, async {
        io.write_all(resp).await?;
        io.shutdown().await
    })
    .await
    {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::Timeout(TimeoutKind::OpeningHandshake)),
    }
}

/// What [`UpgradeRequest::accept_with`] decided before writing anything.
enum Decision {
    /// Answer as plain HTTP with `resp` (nothing if empty), then fail with `error`, or with the
    /// write's own error first if `propagate_write_error`.
    /// (The error is boxed: this lives in every connection's task while the response is written.)
    Refuse { resp: Vec<u8>, error: Box<Error>, propagate_write_error: bool },
    /// Write the 101 response `resp` and open the connection.
    Upgrade { resp: Vec<u8>, config: Arc<Config>, deflate: Option<DeflateParams>, protocol: Option<String> },
}

/// A request read from an accepted connection: inspect it, then [`accept`](UpgradeRequest::accept),
/// [`reject`](UpgradeRequest::reject), or [`respond`](UpgradeRequest::respond) as plain HTTP.
#[derive(Debug)]
pub struct UpgradeRequest<S> {
    io: S,
    peer: SocketAddr,
    request: Request,
    leftover: Vec<u8>,
    config: Arc<Config>,
    deadline: Instant,
    permit: Permit,
}

impl<S: AsyncRead + AsyncWrite + Unpin> UpgradeRequest<S> {
    /// The request: method, path and query, headers, origin, offered subprotocols.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the request asks for a WebSocket; otherwise answer it with
    /// [`respond`](UpgradeRequest::respond).
    pub fn is_websocket(&self) -> bool {
        self.request.is_websocket_upgrade()
    }

    /// Accepts with no subprotocol.
    pub fn accept(self) -> impl Future<Output = Result<WebSocket<S>>> {
        self.accept_with(Accept::new())
    }

    /// Accepts with the given subprotocol and headers, after checking the request against
    /// RFC 6455 §4.2.1. A request that fails the checks is answered with the status its error
    /// names (400, or 426 with `Sec-WebSocket-Version: 13`), and the error returned.
    ///
    /// ```
    /// use duplex::Accept;
    /// # use std::sync::Arc;
    /// # use duplex::{Client, Config, Incoming, Target};
    /// # async fn handshake() -> duplex::Result<()> {
    /// // A client and a server over an in-memory stream (a TCP connection in real use).
    /// let (c, s) = tokio::io::duplex(4096);
    /// let target = Target::parse("ws://example.test/chat")?;
    /// let client = tokio::spawn(async move {
    ///     let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    ///     Client::new().protocol("chat.v1").handshake(c, &target, deadline).await
    /// });
    /// let incoming = Incoming::new(s, "127.0.0.1:1".parse().unwrap(), Arc::new(Config::default()));
    /// let req = incoming.request().await?;
    /// let accept = match req.request().protocols().contains(&"chat.v1") {
    ///     true => Accept::new().protocol("chat.v1"),
    ///     false => Accept::new(),
    /// };
    /// let ws = req.accept_with(accept).await?;
    /// assert_eq!(ws.protocol(), Some("chat.v1"));
    /// let (_ws, response) = client.await.unwrap()?;
    /// assert_eq!(response.protocol.as_deref(), Some("chat.v1"));
    /// # Ok(()) }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() { handshake().await.unwrap() }
    /// ```
    pub fn accept_with(self, accept: Accept) -> impl Future<Output = Result<WebSocket<S>>> {
        // Decided before the future is made, so that it holds only the decision while the
        // response is written: a future is as large as its largest await point (and keeps its
        // arguments in every state), and this one lives in every connection's task.
        let decision = self.decide(accept);
        // Boxed for the same reason as `Incoming::request`: the 101 response is written from
        // the heap, and the connection's task keeps a pointer, not the whole future.
        Box::pin(self.finish(decision))
    }

    #[allow(clippy::manual_async_fn, reason = "an async fn would hold a second copy of its arguments")]
    fn finish(mut self, decision: Decision) -> impl Future<Output = Result<WebSocket<S>>> {
        // An async block works on what it captures in place (an async fn copies its arguments
        // into its body's state too).
        async move {
            match decision {
                Decision::Refuse { resp, error, propagate_write_error } => {
                    let written = answer(&mut self.io, self.deadline, &resp).await;
                    if propagate_write_error {
                        written?;
                    }
                    Err(*error)
                }
                Decision::Upgrade { resp, config, deflate, protocol } => {
                    match timeout_at(self.deadline, self.io.write_all(&resp)).await {
                        Ok(r) => r?,
                        Err(_) => return Err(Error::Timeout(TimeoutKind::OpeningHandshake)),
                    }
                    drop(resp);
                    metrics::handshake_done(self.deadline, self.config.handshake_timeout);
                    let mut ws =
                        WebSocket::from_upgraded_with_deflate(self.io, Role::Server, config, deflate, &self.leftover)
                            .with_protocol(protocol);
                    let permit = std::mem::replace(&mut self.permit, Permit::none());
                    if let Some(slot) = permit.register(ws.sender(), self.peer, &self.request.target) {
                        ws.set_slot(slot);
                    }
                    Ok(ws)
                }
            }
        }
    }

    /// Checks the request (origin, shutdown, RFC 6455 §4.2.1, subprotocol), negotiates
    /// permessage-deflate ([`crate::accept::decide`], shared with [`crate::hyper`]) and builds
    /// the response bytes.
    fn decide(&self, accept: Accept) -> Decision {
        let peer = Some(self.peer);
        let shutting_down = self.permit.is_shutting_down();
        match accept::decide(&self.request, Handshake::Http11, peer, &self.config, shutting_down, accept) {
            accept::Decision::Refuse { status, headers, body, error, propagate_write_error } => {
                let resp = if status == 0 { Vec::new() } else { http_response(status, &headers, &body) };
                Decision::Refuse { resp, error, propagate_write_error }
            }
            accept::Decision::Upgrade(up) => {
                let key = up.key.as_deref().unwrap_or_default();
                let resp =
                    self.request.accept_response(key, up.protocol.as_deref(), up.extensions.as_deref(), &up.headers);
                Decision::Upgrade { resp, config: up.config, deflate: up.deflate, protocol: up.protocol }
            }
        }
    }

    /// Refuses the upgrade with an HTTP status and a plain-text body (403 for a foreign origin,
    /// 401 without credentials, 503 when full, ...).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use duplex::{Client, Config, Incoming, Target};
    /// # async fn handshake() -> duplex::Result<()> {
    /// // A client and a server over an in-memory stream (a TCP connection in real use).
    /// let (c, s) = tokio::io::duplex(4096);
    /// let target = Target::parse("ws://example.test/chat")?;
    /// let client = tokio::spawn(async move {
    ///     let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    ///     Client::new().protocol("chat.v1").handshake(c, &target, deadline).await
    /// });
    /// let incoming = Incoming::new(s, "127.0.0.1:1".parse().unwrap(), Arc::new(Config::default()));
    /// let req = incoming.request().await?;
    /// req.reject(404, "no such endpoint").await?;
    /// let refused = client.await.unwrap().unwrap_err();
    /// assert!(matches!(refused, duplex::Error::Refused(r) if r.status == 404));
    /// # Ok(()) }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() { handshake().await.unwrap() }
    /// ```
    pub fn reject(self, status: u16, body: &str) -> impl Future<Output = Result<()>> {
        let headers = [("Content-Type".to_owned(), "text/plain; charset=utf-8".to_owned())];
        self.respond(status, &headers, body.as_bytes())
    }

    /// Answers as plain HTTP (a page, a health check) and closes the connection.
    #[allow(clippy::manual_async_fn, reason = "the future is boxed")]
    pub fn respond(
        mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> impl Future<Output = Result<()>> {
        // The response is built before the future, which is boxed (as `Incoming::request`): a
        // handler that may answer this way then holds a pointer for it in every connection's
        // task, not the answer's whole state.
        let resp = http_response(status, headers, body);
        Box::pin(async move { answer(&mut self.io, self.deadline, &resp).await })
    }

    /// Gives up the transport, with the bytes read past the request head, to handle the request
    /// some other way.
    pub fn into_parts(self) -> (S, Request, Vec<u8>) {
        (self.io, self.request, self.leftover)
    }
}
