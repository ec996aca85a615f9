//! The client: `connect("ws://…")` or `connect("wss://…")`, with options for headers,
//! subprotocols, timeouts, TLS (trusted CAs, a client certificate) and, with the cargo feature
//! `proxy`, the proxy to go through ([`crate::proxy`]). [`crate::reconnect`] keeps a client
//! connected.
//!
//! ```no_run
//! # async fn f() -> duplex::Result<()> {
//! use duplex::Client;
//! let (mut ws, response) = Client::new()
//!     .header("Authorization", "Bearer secret")
//!     .protocol("chat")
//!     .connect("ws://127.0.0.1:8080/room")
//!     .await?;
//! assert_eq!(ws.protocol(), response.protocol.as_deref());
//! ws.send("hi").await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "tls")]
use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::sync::Arc;

use duplex_proto::handshake::{ClientHandshake, HandshakeError, Refusal, Response};
use duplex_proto::Role;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::config::Config;
use crate::error::{Error, Result, TimeoutKind};
use crate::socket::WebSocket;
use crate::stream::ClientStream;
pub use crate::target::{BadUrl, Target};
#[cfg(feature = "tls")]
use crate::tls::classify::{classify_io, Side};
pub(crate) use crate::tls::client::ClientTls;
use crate::tls::{TlsError, TlsErrorKind, PLAIN_ON_TLS_REASON};

/// Connects to `url` (`ws://host[:port]/path?query`, or `wss://` for TLS, verified against the
/// platform's trusted roots) with default options.
///
/// ```no_run
/// # async fn f() -> duplex::Result<()> {
/// let mut ws = duplex::connect("ws://127.0.0.1:9001/").await?;
/// ws.send("hello").await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<WebSocket<ClientStream>> {
    Ok(Client::new().connect(url).await?.0)
}

/// Options of a client connection. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Client {
    config: Config,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    #[cfg_attr(not(any(feature = "tls", feature = "proxy")), allow(dead_code, reason = "no TLS options"))]
    tls: ClientTls,
    #[cfg(feature = "proxy")]
    proxy: crate::proxy::Proxy,
}

/// The byte stream to the target before TLS to it.
enum Transport {
    Tcp(TcpStream),
    #[cfg(all(feature = "proxy", feature = "tls"))]
    TlsToProxy(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Client {
    /// Default options.
    pub fn new() -> Self {
        Client::default()
    }

    /// Sets the configuration (limits, timeouts).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The proxy to go through: [`Proxy::from_env`](crate::proxy::Proxy::from_env) (the default),
    /// [`Proxy::url`](crate::proxy::Proxy::url) or [`Proxy::none`](crate::proxy::Proxy::none).
    /// For an `https://` proxy, the TLS options below also verify the proxy's certificate.
    #[cfg(feature = "proxy")]
    pub fn proxy(mut self, proxy: crate::proxy::Proxy) -> Self {
        self.proxy = proxy;
        self
    }

    /// The route [`Client::connect`] would take to `url` (which proxy, and why).
    #[cfg(feature = "proxy")]
    pub fn proxy_choice(&self, url: &str) -> Result<crate::proxy::ProxyChoice> {
        Ok(self.proxy.choose(&Target::parse(url)?)?)
    }

    /// Offers a subprotocol; call again for more, in order of preference.
    pub fn protocol(mut self, p: impl Into<String>) -> Self {
        self.protocols.push(p.into());
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `wss://`: also trusts the CA certificates in this PEM file (besides the platform's roots).
    /// The file is read at the first `wss://` connect; if it cannot be, that connect fails with
    /// [`Error::Tls`] naming the file.
    #[cfg(feature = "tls")]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.add_ca_file(path.into());
        self
    }

    /// `wss://`: also trusts this root certificate (DER).
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(mut self, cert: rustls::pki_types::CertificateDer<'static>) -> Self {
        self.tls.add_root(cert);
        self
    }

    /// `wss://`: presents this client certificate (PEM chain, leaf first) with its private key
    /// (PEM) to servers that ask for one (mutual TLS). Read at the first `wss://` connect.
    #[cfg(feature = "tls")]
    pub fn client_cert_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.set_identity_files(cert.into(), key.into());
        self
    }

    /// `wss://`: presents this client certificate chain (leaf first) and key (mutual TLS).
    #[cfg(feature = "tls")]
    pub fn client_cert(
        mut self,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Self {
        self.tls.set_identity(chain, key);
        self
    }

    /// `wss://`, **for development only**: accepts any server certificate (self-signed, expired,
    /// for another name). The connection is encrypted but not authenticated: anyone on the path
    /// can intercept it. Every such connect logs a warning.
    #[cfg(feature = "tls")]
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.tls.set_insecure(accept);
        self
    }

    /// `wss://`: uses this rustls configuration as it is, instead of the one the options above
    /// build (which then no longer apply). Set its `alpn_protocols` to `[b"http/1.1"]`.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls.set_custom(config);
        self
    }

    /// Connects and performs the opening handshake (for `wss://`, the TLS handshake first) within
    /// the handshake timeout. Returns the socket and the server's answer (its headers, the chosen
    /// subprotocol).
    ///
    /// ```no_run
    /// # async fn f() -> duplex::Result<()> {
    /// let (mut ws, response) = duplex::Client::new()
    ///     .header("Authorization", "Bearer token")
    ///     .protocol("chat.v1")
    ///     .connect("ws://127.0.0.1:8080/chat")
    ///     .await?;
    /// println!("subprotocol {:?}", response.protocol);
    /// ws.close(Some(duplex::CloseFrame::new(1000, "done"))).await?;
    /// while ws.recv().await.is_some() {} // finish the close handshake
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response)> {
        let target = Target::parse(url)?;
        #[cfg(not(feature = "tls"))]
        if target.tls {
            return Err(Error::Tls(TlsError::config(format!(
                "{url}: wss:// needs TLS, and this build of duplex has none (cargo feature `tls`)"
            ))));
        }
        let deadline = Instant::now() + self.config.handshake_timeout;
        let transport = match timeout_at(deadline, self.open(&target)).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout(TimeoutKind::Connect)),
        };
        let tcp = match (transport, target.tls) {
            (Transport::Tcp(tcp), false) => {
                return match self.handshake(ClientStream::Plain(tcp), &target, deadline).await {
                    // Our own TLS servers answer a plain client with this status line.
                    Err(Error::Refused(r)) if r.status == 400 && r.reason == PLAIN_ON_TLS_REASON => {
                        Err(Error::Tls(TlsError::new(
                            TlsErrorKind::NotTls,
                            format!("the server {} speaks TLS on this port: use wss:// rather than ws://", target.host),
                        )))
                    }
                    other => other,
                };
            }
            (Transport::Tcp(tcp), true) => tcp,
            #[cfg(all(feature = "proxy", feature = "tls"))]
            (Transport::TlsToProxy(tls), false) => {
                return self.handshake(ClientStream::ViaTlsProxy(tls), &target, deadline).await;
            }
            #[cfg(all(feature = "proxy", feature = "tls"))]
            (Transport::TlsToProxy(tls), true) => {
                // wss:// through an https:// proxy: TLS to the server inside TLS to the proxy.
                let stream = match timeout_at(deadline, self.tls.connect_stream(*tls, &target.host)).await {
                    Ok(r) => ClientStream::TlsViaTlsProxy(Box::new(r?)),
                    Err(_) => return Err(Error::Timeout(TimeoutKind::TlsHandshake)),
                };
                return self.tls_handshake(stream, &target, deadline).await;
            }
        };
        self.connect_tls(tcp, &target, deadline).await
    }

    /// `wss://`: the TLS handshake, then the opening handshake inside it.
    #[cfg(feature = "tls")]
    async fn connect_tls(
        &self,
        tcp: TcpStream,
        target: &Target,
        deadline: Instant,
    ) -> Result<(WebSocket<ClientStream>, Response)> {
        let stream = match timeout_at(deadline, self.tls.connect(tcp, &target.host)).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout(TimeoutKind::TlsHandshake)),
        };
        self.tls_handshake(stream, target, deadline).await
    }

    /// Without TLS compiled in, `connect` refused the `wss://` URL before connecting.
    #[cfg(not(feature = "tls"))]
    async fn connect_tls(
        &self,
        _tcp: TcpStream,
        target: &Target,
        _deadline: Instant,
    ) -> Result<(WebSocket<ClientStream>, Response)> {
        Err(Error::Tls(TlsError::config(format!("{}: wss:// needs the cargo feature `tls`", target.host))))
    }

    /// The byte stream to the target: TCP to it, or a tunnel through the proxy [`Client::proxy`]
    /// chose.
    async fn open(&self, target: &Target) -> Result<Transport> {
        #[cfg(feature = "proxy")]
        {
            let choice = self.proxy.choose(target)?;
            tracing::debug!(host = %target.host, "route: {choice}");
            if let Some(proxy) = &choice.proxy {
                return Ok(match crate::proxy::open(proxy, target, &self.tls).await? {
                    crate::proxy::Tunnel::Tcp(tcp) => Transport::Tcp(tcp),
                    #[cfg(feature = "tls")]
                    crate::proxy::Tunnel::Tls(tls) => Transport::TlsToProxy(tls),
                });
            }
        }
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
        let _ = tcp.set_nodelay(true);
        Ok(Transport::Tcp(tcp))
    }

    /// The opening handshake over TLS to the server.
    #[cfg(feature = "tls")]
    async fn tls_handshake(
        &self,
        stream: ClientStream,
        target: &Target,
        deadline: Instant,
    ) -> Result<(WebSocket<ClientStream>, Response)> {
        match self.handshake(stream, target, deadline).await {
            // Under TLS 1.3 a server that refuses our client certificate says so only after the
            // handshake: the refusal arrives while we wait for the HTTP answer.
            Err(Error::Io(e)) => Err(classify_io(e, Side::Client, &target.host, false).into()),
            other => other,
        }
    }

    /// Performs the opening handshake on a transport that is already connected.
    pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut io: S,
        target: &Target,
        deadline: Instant,
    ) -> Result<(WebSocket<S>, Response)> {
        let mut hs = ClientHandshake::new(target.host_header.clone(), target.resource.clone())
            .limits(self.config.handshake_limits.clone());
        for p in &self.protocols {
            hs = hs.protocol(p.clone());
        }
        for (n, v) in &self.headers {
            hs = hs.header(n.clone(), v.clone());
        }
        // Offers permessage-deflate unless `config.protocol.deflate` is disabled; the answer is
        // checked in `parse_response` and lands in `resp.deflate`.
        hs = hs.deflate(&self.config.protocol.deflate);
        let exchange = async {
            io.write_all(&hs.request()).await?;
            let mut buf = Vec::with_capacity(1024);
            loop {
                match hs.parse_response(&buf) {
                    Ok(Some((resp, n))) => {
                        buf.drain(..n);
                        return Ok::<_, Error>(Ok((resp, buf)));
                    }
                    Ok(None) => {}
                    Err(HandshakeError::Refused(refusal)) => return Ok(Err(refusal)),
                    Err(e) => return Err(e.into()),
                }
                // Straight into `buf`: a stack array here would be held in every connection's
                // task for its whole life (a future is as large as its largest await point).
                buf.reserve(2048);
                let n = io.read_buf(&mut buf).await?;
                if n == 0 {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the opening handshake",
                    )));
                }
            }
        };
        let (resp, leftover) = match timeout_at(deadline, exchange).await {
            Ok(Ok(Ok(accepted))) => accepted,
            Ok(Ok(Err(mut refusal))) => {
                read_refusal_body(&mut io, &mut refusal).await;
                return Err(Error::Refused(refusal));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::Timeout(TimeoutKind::OpeningHandshake)),
        };
        let ws = WebSocket::from_upgraded_with_deflate(io, Role::Client, self.config.clone(), resp.deflate, &leftover)
            .with_protocol(resp.protocol.clone());
        Ok((ws, resp))
    }
}

/// Reads the rest of a refusal's body (RFC 9112 §6.3: `Content-Length` bytes, or until the server
/// closes), at most [`Refusal::MAX_BODY`] bytes and for at most a second: the refusal is reported
/// with what arrived by then. A chunked body is decoded when it is complete.
async fn read_refusal_body<S: AsyncRead + Unpin>(io: &mut S, refusal: &mut Refusal) {
    let chunked = refusal.headers.has_token("transfer-encoding", "chunked");
    let wanted = if chunked { None } else { refusal.content_length() };
    let enough = |r: &Refusal| {
        r.body_truncated
            || wanted.is_some_and(|n| r.body.len() >= n)
            || (chunked && r.body.windows(5).any(|w| w == b"0\r\n\r\n"))
    };
    let read = async {
        let mut chunk = [0u8; 1024];
        while !enough(refusal) {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let take = wanted.map_or(n, |w| n.min(w.saturating_sub(refusal.body.len())));
                    refusal.extend_body(&chunk[..take]);
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), read).await;
    if chunked {
        if let Some(body) = dechunk(&refusal.body) {
            refusal.body = body;
        }
    }
}

/// The data of a complete chunked body (RFC 9112 §7.1), or `None` if it is cut or malformed.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_refusal_bodies() {
        assert_eq!(dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").as_deref(), Some(&b"hello world"[..]));
        assert_eq!(dechunk(b"5\r\nhel"), None);
    }
}
