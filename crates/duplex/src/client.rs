//! The client: `connect("ws://…")` or `connect("wss://…")`, with options for headers,
//! subprotocols, timeouts and TLS (trusted CAs, a client certificate).
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

use std::path::PathBuf;
use std::sync::Arc;

use duplex_proto::handshake::{ClientHandshake, HandshakeError, Response};
use duplex_proto::Role;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::socket::WebSocket;
use crate::stream::ClientStream;
use crate::tls::{self, ClientTls, TlsError, TlsErrorKind};

/// Connects to `url` (`ws://host[:port]/path?query`, or `wss://` for TLS, verified against the
/// platform's trusted roots) with default options.
pub async fn connect(url: &str) -> Result<WebSocket<ClientStream>> {
    Ok(Client::new().connect(url).await?.0)
}

/// Options of a client connection. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Client {
    config: Config,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    tls: ClientTls,
}

/// A parsed `ws://` or `wss://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Whether the URL asks for TLS (`wss://`).
    pub tls: bool,
    /// The host name or address, without IPv6 brackets.
    pub host: String,
    /// The port (80 or 443 by default).
    pub port: u16,
    /// The `Host` header: host, and port unless it is the default.
    pub host_header: String,
    /// Path and query.
    pub resource: String,
}

impl Target {
    /// Parses a WebSocket URL (RFC 6455 §3). `http(s)://` is accepted as `ws(s)://`, as browsers do.
    pub fn parse(url: &str) -> Result<Target> {
        let u = url::Url::parse(url).map_err(|e| Error::Url(format!("{url}: {e}")))?;
        let tls = match u.scheme() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            s => return Err(Error::Url(format!("{url}: scheme {s:?} is not ws:// or wss://"))),
        };
        if u.fragment().is_some() {
            return Err(Error::Url(format!("{url}: a WebSocket URL cannot have a #fragment")));
        }
        let host = match u.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(Error::Url(format!("{url}: no host"))),
        };
        let default_port = if tls { 443 } else { 80 };
        let port = u.port().unwrap_or(default_port);
        let host_for_header = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        let host_header = if port == default_port { host_for_header } else { format!("{host_for_header}:{port}") };
        let mut resource = u.path().to_owned();
        if let Some(q) = u.query() {
            resource.push('?');
            resource.push_str(q);
        }
        Ok(Target { tls, host, port, host_header, resource })
    }
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
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.add_ca_file(path.into());
        self
    }

    /// `wss://`: also trusts this root certificate (DER).
    pub fn add_root_certificate(mut self, cert: rustls::pki_types::CertificateDer<'static>) -> Self {
        self.tls.add_root(cert);
        self
    }

    /// `wss://`: presents this client certificate (PEM chain, leaf first) with its private key
    /// (PEM) to servers that ask for one (mutual TLS). Read at the first `wss://` connect.
    pub fn client_cert_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.set_identity_files(cert.into(), key.into());
        self
    }

    /// `wss://`: presents this client certificate chain (leaf first) and key (mutual TLS).
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
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.tls.set_insecure(accept);
        self
    }

    /// `wss://`: uses this rustls configuration as it is, instead of the one the options above
    /// build (which then no longer apply). Set its `alpn_protocols` to `[b"http/1.1"]`.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls.set_custom(config);
        self
    }

    /// Connects and performs the opening handshake (for `wss://`, the TLS handshake first) within
    /// the handshake timeout. Returns the socket and the server's answer (its headers, the chosen
    /// subprotocol).
    pub async fn connect(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response)> {
        let target = Target::parse(url)?;
        let deadline = Instant::now() + self.config.handshake_timeout;
        let tcp = match timeout_at(deadline, TcpStream::connect((target.host.as_str(), target.port))).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout("connecting")),
        };
        let _ = tcp.set_nodelay(true);
        if !target.tls {
            return match self.handshake(ClientStream::Plain(tcp), &target, deadline).await {
                // Our own TLS servers answer a plain client with this status line.
                Err(Error::Handshake(HandshakeError::UnexpectedStatus(400, reason)))
                    if reason == tls::PLAIN_ON_TLS_REASON =>
                {
                    Err(Error::Tls(TlsError::new(
                        TlsErrorKind::NotTls,
                        format!("the server {} speaks TLS on this port: use wss:// rather than ws://", target.host),
                    )))
                }
                other => other,
            };
        }
        let stream = match timeout_at(deadline, self.tls.connect(tcp, &target.host)).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout("the TLS handshake")),
        };
        match self.handshake(stream, &target, deadline).await {
            // Under TLS 1.3 a server that refuses our client certificate says so only after the
            // handshake: the refusal arrives while we wait for the HTTP answer.
            Err(Error::Io(e)) => Err(tls::classify_io(e, tls::Side::Client, &target.host, false)),
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
                if let Some((resp, n)) = hs.parse_response(&buf)? {
                    buf.drain(..n);
                    return Ok::<_, Error>((resp, buf));
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
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout("the opening handshake")),
        };
        let ws = WebSocket::from_upgraded_with_deflate(io, Role::Client, self.config.clone(), resp.deflate, &leftover)
            .with_protocol(resp.protocol.clone());
        Ok((ws, resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("ws://localhost:8080/chat?x=1").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.host_header.as_str(), t.resource.as_str()),
            (false, "localhost", 8080, "localhost:8080", "/chat?x=1")
        );
        let t = Target::parse("wss://example.com").unwrap();
        assert_eq!((t.tls, t.port, t.host_header.as_str(), t.resource.as_str()), (true, 443, "example.com", "/"));
        let t = Target::parse("ws://[::1]:9001").unwrap();
        assert_eq!((t.host.as_str(), t.host_header.as_str()), ("::1", "[::1]:9001"));
        assert!(matches!(Target::parse("ftp://x"), Err(Error::Url(_))));
        assert!(matches!(Target::parse("ws://x/#frag"), Err(Error::Url(_))));
    }
}
