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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

pub use crate::accept::Accept;
use crate::config::Config;
use crate::error::Result;
use crate::shutdown::{ShutdownHandle, Tracker};
use crate::stream::ServerStream;
#[cfg(feature = "tls")]
use crate::tls::TlsAcceptor;
use crate::trusted_proxy::TrustedProxies;
pub use incoming::{Incoming, UpgradeRequest};
pub use listen::ServerBuilder;

mod incoming;
pub mod listen;

/// A listening WebSocket server, plain (`ws://`) or, after [`Server::with_tls`], TLS (`wss://`).
#[derive(Debug)]
pub struct Server {
    /// One listener, or several bound with `SO_REUSEPORT` (see [`crate::listen`]).
    listeners: Vec<TcpListener>,
    /// The listen backlog the kernel granted, when we bound the listeners ourselves.
    backlog: Option<u32>,
    /// Where [`Server::accept`] starts polling the listeners, so that none is always last.
    next: AtomicUsize,
    config: Arc<Config>,
    #[cfg(feature = "tls")]
    tls: Option<TlsAcceptor>,
    tracker: Arc<Tracker>,
    #[cfg(feature = "ip-limits")]
    ip_limiter: Option<Arc<crate::ip_limit::IpLimiter>>,
    trusted: Option<Arc<TrustedProxies>>,
}

impl Server {
    /// Binds a TCP listener with the default [`Config`] and a listen backlog of
    /// [`DEFAULT_BACKLOG`](crate::listen::DEFAULT_BACKLOG) (1024); [`Server::builder`] chooses
    /// the backlog and `SO_REUSEPORT` listeners.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = duplex::Server::bind("127.0.0.1:8080").await?;
    /// println!("listening on ws://{}", server.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        ServerBuilder::default().bind(addr).await
    }

    /// A builder for the listening sockets: the listen backlog and `SO_REUSEPORT` (see
    /// [`crate::listen`]).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = duplex::Server::builder().backlog(4096).bind("0.0.0.0:8080").await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Serves on a listener bound elsewhere (its backlog is whatever it was bound with).
    pub fn from_listener(listener: TcpListener, config: Config) -> Server {
        Server::from_listeners(vec![listener], None, config)
    }

    pub(crate) fn from_listeners(listeners: Vec<TcpListener>, backlog: Option<u32>, config: Config) -> Server {
        assert!(!listeners.is_empty(), "a server needs a listener");
        Server {
            listeners,
            backlog,
            next: AtomicUsize::new(0),
            config: Arc::new(config),
            #[cfg(feature = "tls")]
            tls: None,
            tracker: Arc::default(),
            #[cfg(feature = "ip-limits")]
            ip_limiter: None,
            trusted: None,
        }
    }

    /// Serves `wss://`: every accepted connection runs a TLS handshake first, in
    /// [`Incoming::request`] (so in the connection's task, under the handshake timeout). Takes a
    /// [`TlsAcceptor`] or a `rustls::ServerConfig` (plain or in an `Arc`); see [`crate::tls`].
    /// Cargo feature `tls`.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use duplex::tls;
    /// let config = tls::server_config(tls::load_certs("cert.pem")?, tls::load_private_key("key.pem")?)?;
    /// let server = duplex::Server::bind("127.0.0.1:8443").await?.with_tls(config);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: impl Into<TlsAcceptor>) -> Server {
        self.tls = Some(tls.into());
        self.tracker.tls.store(true, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Limits each client address (connections at once, handshake rate), checked right after
    /// accept, before TLS and before the request is read: over a limit, `ws://` clients get
    /// 429 with `Retry-After` and `wss://` ones are closed before the TLS handshake. See
    /// [`crate::ip_limit`]. Nothing is limited by default.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use duplex::ip_limit::IpLimits;
    /// let server = duplex::Server::bind("0.0.0.0:8080").await?
    ///     .with_ip_limits(IpLimits::new().max_connections(50).handshake_rate(10.0, 20));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "ip-limits")]
    pub fn with_ip_limits(self, limits: crate::ip_limit::IpLimits) -> Server {
        self.with_ip_limiter(crate::ip_limit::IpLimiter::new(limits))
    }

    /// [`with_ip_limits`](Server::with_ip_limits) with a limiter shared with other servers
    /// (one count per address across a `ws://` and a `wss://` listener).
    #[cfg(feature = "ip-limits")]
    pub fn with_ip_limiter(mut self, limiter: Arc<crate::ip_limit::IpLimiter>) -> Server {
        self.ip_limiter = limiter.limits().is_enabled().then_some(limiter);
        self
    }

    /// Takes the client's address from these proxies: from a PROXY protocol header they send
    /// first, or from their `Forwarded` / `X-Forwarded-For` headers (see
    /// [`crate::trusted_proxy`]). That address is the connection's
    /// [`peer_addr`](UpgradeRequest::peer_addr), in logs and [`Connections`](crate::Connections),
    /// and the one the per-address limits count.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Server {
        self.trusted = (!proxies.is_empty()).then(|| Arc::new(proxies));
        self
    }

    /// Whether connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
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
        self.listeners[0].local_addr()
    }

    /// The listen backlog the kernel granted (what was asked, capped at `net.core.somaxconn`),
    /// or `None` for a listener bound elsewhere ([`Server::from_listener`]).
    pub fn backlog(&self) -> Option<u32> {
        self.backlog
    }

    /// How many listening sockets the server accepts from: 1, or the number of `SO_REUSEPORT`
    /// listeners ([`ServerBuilder::reuse_port`]).
    pub fn listeners(&self) -> usize {
        self.listeners.len()
    }

    /// Accepts the next TCP connection (from any of the listeners). Its request has not been
    /// read yet, nor, on a TLS server, its TLS handshake run: [`Incoming::request`] does both.
    pub async fn accept(&self) -> io::Result<Incoming<ServerStream>> {
        loop {
            match std::future::poll_fn(|cx| self.poll_accept_any(cx)).await {
                Ok((io, peer)) => return Ok(self.incoming(io, peer)),
                Err(e) => transient_or_fatal(e).await?,
            }
        }
    }

    /// Polls every listener once, starting at a rotating index.
    fn poll_accept_any(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let n = self.listeners.len();
        let start = if n == 1 { 0 } else { self.next.fetch_add(1, Ordering::Relaxed) % n };
        for i in 0..n {
            if let Poll::Ready(r) = self.listeners[(start + i) % n].poll_accept(cx) {
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    }

    /// An accepted TCP connection, counted and given the server's settings.
    fn incoming(&self, io: TcpStream, peer: SocketAddr) -> Incoming<ServerStream> {
        let _ = io.set_nodelay(true);
        let mut incoming = Incoming::new(ServerStream::Plain(io), peer, self.config.clone());
        incoming.permit = self.tracker.admit();
        #[cfg(feature = "ip-limits")]
        {
            incoming.ip_limiter = self.ip_limiter.clone();
        }
        incoming.trusted = self.trusted.as_ref().filter(|t| t.contains(peer.ip())).cloned();
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            incoming.prelude = Some(tls_prelude(tls.clone()));
        }
        incoming
    }

    /// Waits for a connection on listener `index` (any listener when `None`), then accepts every
    /// connection already queued there, spawning `handler` for each: one wake-up empties the
    /// kernel's queue instead of going back through `select!` (and registering a shutdown
    /// waiter) per connection. tokio's cooperative budget still ends a long batch (128 accepts)
    /// so that the handshakes just spawned get to run.
    async fn accept_batch<F, Fut>(&self, index: Option<usize>, handler: &F) -> io::Result<usize>
    where
        F: Fn(Incoming<ServerStream>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        std::future::poll_fn(|cx| {
            let mut accepted = 0;
            loop {
                let polled = match index {
                    Some(i) => self.listeners[i].poll_accept(cx),
                    None => self.poll_accept_any(cx),
                };
                match polled {
                    Poll::Ready(Ok((io, peer))) => {
                        tokio::spawn(handler(self.incoming(io, peer)));
                        accepted += 1;
                    }
                    Poll::Ready(Err(e)) if accepted > 0 && is_transient_accept_error(&e) => {
                        // Handled on the next call, which will see it again or the next one.
                        tracing::warn!(error = %e, "accept failed; continuing");
                        return Poll::Ready(Ok(accepted));
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending if accepted > 0 => return Poll::Ready(Ok(accepted)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }

    /// Accepts on listener `index` (any when `None`) until shutdown starts.
    async fn accept_loop<F, Fut>(&self, index: Option<usize>, handler: &F) -> io::Result<()>
    where
        F: Fn(Incoming<ServerStream>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            tokio::select! {
                batch = self.accept_batch(index, handler) => {
                    if let Err(e) = batch {
                        transient_or_fatal(e).await?;
                    }
                }
                _ = self.tracker.wait_started() => return Ok(()),
            }
        }
    }

    /// The server's connections: every WebSocket it accepted and that is still open, by id
    /// ([`Sender::id`](crate::Sender::id)); list them, send to one or all, close them. See
    /// [`crate::registry`].
    pub fn connections(&self) -> crate::Connections {
        self.tracker.connections.clone()
    }

    /// A handle that starts this server's graceful shutdown (see [`crate::shutdown`]).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { tracker: self.tracker.clone() }
    }

    /// Accepts connections, running `handler` for each in its own task, until a shutdown is
    /// started with a [`ShutdownHandle`]. Then it stops accepting, sends close 1001 to every open
    /// WebSocket (after what each already has queued), waits up to
    /// [`Config::shutdown_grace`] for them to close, logs what did not, and returns.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let server = duplex::Server::bind("127.0.0.1:9001").await?;
    /// server
    ///     .serve(|incoming| async move {
    ///         let Ok(req) = incoming.request().await else { return };
    ///         let Ok(mut ws) = req.accept().await else { return };
    ///         while let Some(Ok(msg)) = ws.recv().await {
    ///             if ws.send(msg).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     })
    ///     .await
    /// # }
    /// ```
    pub async fn serve<F, Fut>(self, handler: F) -> io::Result<()>
    where
        F: Fn(Incoming<ServerStream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (config, tracker) = (self.config.clone(), self.tracker.clone());
        if self.listeners.len() == 1 {
            let accepted = self.accept_loop(None, &handler).await;
            drop(self); // refuse new connections at the TCP level
            accepted?;
        } else {
            // SO_REUSEPORT: one accept loop per listener, each its own task so that a
            // multi-thread runtime runs them on its workers (and the connections each one spawns
            // start in that worker's queue).
            let (server, handler) = (Arc::new(self), Arc::new(handler));
            let mut loops = tokio::task::JoinSet::new();
            for i in 0..server.listeners.len() {
                let (server, handler) = (server.clone(), handler.clone());
                loops.spawn(async move { server.accept_loop(Some(i), &*handler).await });
            }
            while let Some(done) = loops.join_next().await {
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e), // dropping `loops` ends the others
                    Err(e) => return Err(io::Error::other(format!("an accept loop failed: {e}"))),
                }
            }
            // Every loop is over and held its own `Arc`: this is the last, and with it go the
            // listeners: new connections are refused at the TCP level.
            drop(server);
        }
        let open = tracker.active();
        tracing::info!(open, grace = ?config.shutdown_grace, "shutting down: closing the open connections");
        let (left, bytes) = tracker.drain(config.shutdown_grace).await;
        if left == 0 {
            tracing::info!("shutdown complete: every connection closed");
        } else {
            tracing::warn!(
                still_open = left,
                undelivered_bytes = bytes,
                grace = ?config.shutdown_grace,
                "shutdown: connections did not close within the grace period; their queued bytes were not delivered"
            );
        }
        Ok(())
    }
}

/// A failed accept: per-connection failures (reset before accept, fd exhaustion) must not end the
/// server: log, back off briefly, go on. Anything else is returned.
async fn transient_or_fatal(e: io::Error) -> io::Result<()> {
    if !is_transient_accept_error(&e) {
        return Err(e);
    }
    tracing::warn!(error = %e, "accept failed; continuing");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(())
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
#[cfg(feature = "tls")]
fn tls_prelude(tls: TlsAcceptor) -> Prelude<ServerStream> {
    Prelude(Box::new(move |io| {
        Box::pin(async move {
            match io {
                ServerStream::Plain(tcp) => Ok(ServerStream::Tls(Box::new(tls.accept_unbuffered(tcp).await?))),
                done => Ok(done),
            }
        })
    }))
}
