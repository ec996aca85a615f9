//! The client: `connect("ws://…")`, with options for headers, subprotocols and timeouts.
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

use duplex_proto::handshake::{ClientHandshake, Response};
use duplex_proto::Role;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::socket::WebSocket;
use crate::stream::ClientStream;

/// Connects to `url` (`ws://host[:port]/path?query`) with default options.
pub async fn connect(url: &str) -> Result<WebSocket<ClientStream>> {
    Ok(Client::new().connect(url).await?.0)
}

/// Options of a client connection. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Client {
    config: Config,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
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

    /// Connects and performs the opening handshake within the handshake timeout. Returns the
    /// socket and the server's answer (its headers, the chosen subprotocol).
    pub async fn connect(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response)> {
        let target = Target::parse(url)?;
        if target.tls {
            return Err(Error::Url(format!("{url}: wss:// is not supported by this build yet")));
        }
        let deadline = Instant::now() + self.config.handshake_timeout;
        let tcp = match timeout_at(deadline, TcpStream::connect((target.host.as_str(), target.port))).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout("connecting")),
        };
        let _ = tcp.set_nodelay(true);
        self.handshake(ClientStream::Plain(tcp), &target, deadline).await
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
        let exchange = async {
            io.write_all(&hs.request()).await?;
            let mut buf = Vec::with_capacity(1024);
            loop {
                if let Some((resp, n)) = hs.parse_response(&buf)? {
                    buf.drain(..n);
                    return Ok::<_, Error>((resp, buf));
                }
                let mut chunk = [0u8; 2048];
                let n = io.read(&mut chunk).await?;
                if n == 0 {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the opening handshake",
                    )));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        let (resp, leftover) = match timeout_at(deadline, exchange).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout("the opening handshake")),
        };
        let ws = WebSocket::from_upgraded(io, Role::Client, self.config.clone(), &leftover)
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
