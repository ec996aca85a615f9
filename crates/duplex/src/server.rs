//! The server: accept TCP connections, read each upgrade request, and let the application accept
//! it (choosing a subprotocol, adding headers), reject it with an HTTP status, or answer it as a
//! plain HTTP request on the same port.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! let server = duplex::Server::bind("127.0.0.1:8080").await?;
//! server.serve(|incoming| async move {
//!     let Ok(req) = incoming.request().await else { return };
//!     if req.request().path() != "/chat" {
//!         let _ = req.reject(404, "no such endpoint").await;
//!         return;
//!     }
//!     let Ok(mut ws) = req.accept().await else { return };
//!     while let Some(Ok(msg)) = ws.recv().await {
//!         if ws.send(msg).await.is_err() { break }
//!     }
//! }).await
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use duplex_proto::handshake::{http_response, HandshakeError, Limits, Request};
use duplex_proto::DeflateParams;
use duplex_proto::Role;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::time::{timeout_at, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::origin;
use crate::shutdown::{Permit, ShutdownHandle, Tracker};
use crate::socket::WebSocket;
use crate::stream::ServerStream;
use crate::tls::TlsAcceptor;

/// A listening WebSocket server, plain (`ws://`) or, after [`Server::with_tls`], TLS (`wss://`).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: Arc<Config>,
    tls: Option<TlsAcceptor>,
    tracker: Arc<Tracker>,
}

impl Server {
    /// Binds a TCP listener with the default [`Config`].
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        Ok(Server::from_listener(TcpListener::bind(addr).await?, Config::default()))
    }

    /// Serves on a listener bound elsewhere.
    pub fn from_listener(listener: TcpListener, config: Config) -> Server {
        Server { listener, config: Arc::new(config), tls: None, tracker: Arc::default() }
    }

    /// Serves `wss://`: every accepted connection runs a TLS handshake first, in
    /// [`Incoming::request`] (so in the connection's task, under the handshake timeout). Takes a
    /// [`TlsAcceptor`] or a `rustls::ServerConfig` (plain or in an `Arc`); see [`crate::tls`].
    ///
    /// ```no_run
    /// # async fn f() -> duplex::Result<()> {
    /// let cert = duplex::tls::SelfSigned::localhost()?;
    /// cert.write_cert_pem("/tmp/dev-cert.pem")?; // for clients to trust
    /// let server = duplex::Server::bind("127.0.0.1:8443").await?.with_tls(cert.server_config()?);
    /// # Ok(()) }
    /// ```
    pub fn with_tls(mut self, tls: impl Into<TlsAcceptor>) -> Server {
        self.tls = Some(tls.into());
        self
    }

    /// Whether connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: Config) -> Server {
        self.config = Arc::new(config);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts the next TCP connection. Its request has not been read yet, nor, on a TLS server,
    /// its TLS handshake run: [`Incoming::request`] does both.
    pub async fn accept(&self) -> io::Result<Incoming<ServerStream>> {
        loop {
            match self.listener.accept().await {
                Ok((io, peer)) => {
                    let _ = io.set_nodelay(true);
                    let mut incoming = Incoming::new(ServerStream::Plain(io), peer, self.config.clone());
                    incoming.permit = Some(self.tracker.admit());
                    if let Some(tls) = &self.tls {
                        incoming.prelude = Some(tls_prelude(tls.clone()));
                    }
                    return Ok(incoming);
                }
                // Per-connection failures (reset before accept, fd exhaustion) must not end the
                // server: log, back off briefly on resource exhaustion, go on.
                Err(e) if is_transient_accept_error(&e) => {
                    tracing::warn!(error = %e, "accept failed; continuing");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A handle that starts this server's graceful shutdown (see [`crate::shutdown`]).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { tracker: self.tracker.clone() }
    }

    /// Accepts connections, running `handler` for each in its own task, until a shutdown is
    /// started with a [`ShutdownHandle`]. Then it stops accepting, sends close 1001 to every open
    /// WebSocket (after what each already has queued), waits up to
    /// [`Config::shutdown_grace`] for them to close, logs what did not, and returns.
    pub async fn serve<F, Fut>(self, handler: F) -> io::Result<()>
    where
        F: Fn(Incoming<ServerStream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            tokio::select! {
                incoming = self.accept() => {
                    tokio::spawn(handler(incoming?));
                }
                _ = self.tracker.wait_started() => break,
            }
        }
        let Server { listener, config, tracker, .. } = self;
        drop(listener); // refuse new connections at the TCP level
        let open = tracker.active();
        tracing::info!("shutting down: closing {open} connection{} (grace {:?})", plural(open), config.shutdown_grace);
        let (left, bytes) = tracker.drain(config.shutdown_grace).await;
        if left == 0 {
            tracing::info!("shutdown complete: every connection closed");
        } else {
            tracing::warn!(
                "shutdown: {left} connection{} did not close within {:?}; {bytes} queued bytes were not delivered",
                plural(left),
                config.shutdown_grace
            );
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
        || e.raw_os_error().is_some_and(|c| c == 24 || c == 23) // EMFILE, ENFILE
}

/// A step that must run on a transport before its request is read (the TLS handshake).
type PreludeFn<S> = Box<dyn FnOnce(S) -> Pin<Box<dyn Future<Output = Result<S>> + Send>> + Send + Sync>;

/// [`PreludeFn`], with `Debug`.
struct Prelude<S>(PreludeFn<S>);

impl<S> fmt::Debug for Prelude<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsHandshake")
    }
}

/// The TLS handshake of a connection accepted by a TLS server.
fn tls_prelude(tls: TlsAcceptor) -> Prelude<ServerStream> {
    Prelude(Box::new(move |io| {
        Box::pin(async move {
            match io {
                ServerStream::Plain(tcp) => Ok(ServerStream::Tls(Box::new(tls.accept(tcp).await?))),
                done => Ok(done),
            }
        })
    }))
}

/// An accepted connection whose HTTP request has not been read yet (nor, on a TLS server, its
/// TLS handshake run).
#[derive(Debug)]
pub struct Incoming<S> {
    io: S,
    peer: SocketAddr,
    config: Arc<Config>,
    deadline: Instant,
    prelude: Option<Prelude<S>>,
    /// Its place in the server's count of connections.
    permit: Option<Permit>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// Wraps a transport accepted elsewhere (a TLS stream, a Unix socket).
    pub fn new(io: S, peer: SocketAddr, config: Arc<Config>) -> Self {
        let deadline = Instant::now() + config.handshake_timeout;
        Incoming { io, peer, config, deadline, prelude: None, permit: None }
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
    #[allow(clippy::manual_async_fn, reason = "an async fn would hold a second copy of its arguments")]
    pub fn request(mut self) -> impl Future<Output = Result<UpgradeRequest<S>>> {
        // An async block, not an async fn: it works on `self` in place instead of keeping a
        // second copy, and this future lives in every connection's task.
        async move {
            if let Some(Prelude(prelude)) = self.prelude.take() {
                match timeout_at(self.deadline, prelude(self.io)).await {
                    Ok(Ok(io)) => self.io = io,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                        return Err(e);
                    }
                    Err(_) => {
                        tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                        return Err(Error::Timeout("the TLS handshake"));
                    }
                }
            }
            // Every await below holds only this task's small state: a future is as large as its
            // largest await point, and this one lives in every connection's task.
            let parsed = timeout_at(self.deadline, read_head(&mut self.io, &self.config.handshake_limits)).await;
            let (resp, error) = match parsed {
                Ok(Ok((request, leftover))) => {
                    let limit = self.config.max_connections;
                    if !self.permit.as_ref().is_some_and(|p| p.active() > limit) {
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
                    let resp = plain_response(503, "the server is at its connection limit; try again later\n", &[]);
                    (resp, Error::Refused(503, "connection limit reached".into()))
                }
                Ok(Err(Error::Handshake(e))) => {
                    tracing::debug!(peer = %self.peer, error = %e, "bad HTTP request");
                    (plain_response(e.status(), &format!("{e}\n"), &[]), Error::Handshake(e))
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "handshake timed out");
                    return Err(Error::Timeout("reading the opening handshake request"));
                }
            };
            let _ = answer(&mut self.io, self.deadline, &resp).await;
            Err(error)
        }
    }
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
        Err(_) => Err(Error::Timeout("writing the HTTP response")),
    }
}

/// What [`UpgradeRequest::accept_with`] decided before writing anything.
enum Decision {
    /// Answer as plain HTTP with `resp` (nothing if empty), then fail with `error`, or with the
    /// write's own error first if `propagate_write_error`.
    Refuse { resp: Vec<u8>, error: Error, propagate_write_error: bool },
    /// Write the 101 response `resp` and open the connection.
    Upgrade { resp: Vec<u8>, config: Arc<Config>, deflate: Option<DeflateParams>, protocol: Option<String> },
}

/// How to accept an upgrade: the subprotocol and extra response headers.
#[derive(Clone, Debug, Default)]
pub struct Accept {
    protocol: Option<String>,
    headers: Vec<(String, String)>,
    config: Option<Config>,
}

impl Accept {
    /// Accept with no subprotocol and no extra headers.
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
    permit: Option<Permit>,
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
    pub fn accept_with(self, accept: Accept) -> impl Future<Output = Result<WebSocket<S>>> {
        // Decided before the future is made, so that it holds only the decision while the
        // response is written: a future is as large as its largest await point (and keeps its
        // arguments in every state), and this one lives in every connection's task.
        let decision = self.decide(accept);
        self.finish(decision)
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
                    Err(error)
                }
                Decision::Upgrade { resp, config, deflate, protocol } => {
                    match timeout_at(self.deadline, self.io.write_all(&resp)).await {
                        Ok(r) => r?,
                        Err(_) => return Err(Error::Timeout("writing the handshake response")),
                    }
                    drop(resp);
                    let mut ws =
                        WebSocket::from_upgraded_with_deflate(self.io, Role::Server, config, deflate, &self.leftover)
                            .with_protocol(protocol);
                    if let Some(mut permit) = self.permit.take() {
                        permit.attach(ws.sender());
                        ws.set_permit(permit);
                    }
                    Ok(ws)
                }
            }
        }
    }

    /// Checks the request (origin, shutdown, RFC 6455 §4.2.1, subprotocol), negotiates
    /// permessage-deflate and builds the response.
    fn decide(&self, accept: Accept) -> Decision {
        if let Some(origin) = self.request.origin() {
            if !self.config.allowed_origins.is_empty() && !origin::is_allowed(&self.config.allowed_origins, origin) {
                tracing::info!(peer = %self.peer, %origin, "refused: origin not allowed");
                return Decision::Refuse {
                    resp: plain_response(403, "this origin may not open a WebSocket here\n", &[]),
                    error: Error::Refused(403, format!("origin {origin} is not allowed")),
                    propagate_write_error: true,
                };
            }
        }
        if self.permit.as_ref().is_some_and(|p| p.is_shutting_down()) {
            return Decision::Refuse {
                resp: plain_response(503, "the server is shutting down\n", &[]),
                error: Error::Refused(503, "the server is shutting down".into()),
                propagate_write_error: true,
            };
        }
        let key = match self.request.validate() {
            Ok(k) => k.to_owned(),
            Err(e) => {
                let mut extra = Vec::new();
                if e.status() == 426 {
                    extra.push(("Sec-WebSocket-Version".into(), "13".into()));
                    extra.push(("Upgrade".into(), "websocket".into()));
                }
                return Decision::Refuse {
                    resp: plain_response(e.status(), &format!("{e}\n"), &extra),
                    error: Error::Handshake(e),
                    propagate_write_error: false,
                };
            }
        };
        if let Some(p) = &accept.protocol {
            if !self.request.protocols().contains(&p.as_str()) {
                // Our mistake, not the client's: nothing is written, the connection is dropped.
                return Decision::Refuse {
                    resp: Vec::new(),
                    error: Error::Handshake(HandshakeError::UnofferedProtocol(p.clone())),
                    propagate_write_error: false,
                };
            }
        }
        let config = accept.config.map(Arc::new).unwrap_or_else(|| self.config.clone());
        // permessage-deflate (RFC 7692): the first acceptable offer, per `config.protocol.deflate`.
        let (deflate, extensions) = match self.request.negotiate_deflate(&config.protocol.deflate) {
            Some((params, answer)) => (Some(params), Some(answer)),
            None => (None, None),
        };
        let resp =
            self.request.accept_response(&key, accept.protocol.as_deref(), extensions.as_deref(), &accept.headers);
        Decision::Upgrade { resp, config, deflate, protocol: accept.protocol }
    }

    /// Refuses the upgrade with an HTTP status and a plain-text body (403 for a foreign origin,
    /// 401 without credentials, 503 when full, ...).
    pub async fn reject(self, status: u16, body: &str) -> Result<()> {
        let headers = [("Content-Type".to_owned(), "text/plain; charset=utf-8".to_owned())];
        self.respond(status, &headers, body.as_bytes()).await
    }

    /// Answers as plain HTTP (a page, a health check) and closes the connection.
    pub async fn respond(mut self, status: u16, headers: &[(String, String)], body: &[u8]) -> Result<()> {
        let resp = http_response(status, headers, body);
        answer(&mut self.io, self.deadline, &resp).await
    }

    /// Gives up the transport, with the bytes read past the request head, to handle the request
    /// some other way.
    pub fn into_parts(self) -> (S, Request, Vec<u8>) {
        (self.io, self.request, self.leftover)
    }
}
