//! Where a client connects: a `ws://` or `wss://` URL taken apart (RFC 6455 §3).

use std::fmt;

/// A URL a client cannot connect to, and why (a scheme other than `ws(s)://` or `http(s)://`, no
/// host, a `#fragment`, ...). `?` turns it into [`duplex::Error::Url`](crate::Error::Url).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadUrl(pub String);

impl fmt::Display for BadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad WebSocket URL: {}", self.0)
    }
}

impl std::error::Error for BadUrl {}

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
    pub fn parse(url: &str) -> Result<Target, BadUrl> {
        let u = url::Url::parse(url).map_err(|e| BadUrl(format!("{url}: {e}")))?;
        let tls = match u.scheme() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            s => return Err(BadUrl(format!("{url}: scheme {s:?} is not ws:// or wss://"))),
        };
        if u.fragment().is_some() {
            return Err(BadUrl(format!("{url}: a WebSocket URL cannot have a #fragment")));
        }
        let host = match u.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(BadUrl(format!("{url}: no host"))),
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
        assert!(matches!(Target::parse("ftp://x"), Err(BadUrl(_))));
        assert!(matches!(Target::parse("ws://x/#frag"), Err(BadUrl(_))));
    }
}
