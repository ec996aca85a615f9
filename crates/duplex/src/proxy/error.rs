//! Why a connection through a proxy failed: the proxy could not be reached, it refused (its
//! answer kept whole), or it does not speak what its URL says.

use std::fmt;

use duplex_proto::handshake::Refusal;

/// A proxy failure. [`ProxyError::kind`] says which; the message names the proxy (without its
/// password) and what it answered.
#[derive(Debug)]
pub struct ProxyError {
    proxy: String,
    kind: ProxyErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// What went wrong with a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyErrorKind {
    /// The proxy URL cannot be used (unknown scheme, no host, ...): the text says why.
    Url(String),
    /// The proxy itself could not be reached: TCP to it failed.
    Unreachable,
    /// TLS with an `https://` proxy failed (its certificate is not trusted, ...): the kind, and
    /// the [`TlsError`](crate::TlsError) as the source.
    Tls(crate::TlsErrorKind),
    /// An HTTP proxy answered the `CONNECT` with this instead of 2xx: 407 means credentials are
    /// missing or wrong (its `Proxy-Authenticate` header says which scheme it wants), 403 a rule
    /// forbids the target, 502/503/504 the proxy could not reach it.
    Refused(Box<Refusal>),
    /// A SOCKS proxy refused, with this reply.
    Socks(SocksReply),
    /// The proxy's answer is not the protocol its URL names (an HTTP proxy given as `socks5://`,
    /// bytes after the `CONNECT` answer, ...): the text says what.
    Protocol(String),
}

/// A SOCKS proxy's refusal, by name (RFC 1928 §6 for SOCKS5, RFC 1929 for its user/password
/// authentication, the SOCKS4 protocol's replies 0x5B-0x5D).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocksReply {
    /// SOCKS5 0x01: general SOCKS server failure.
    GeneralFailure,
    /// SOCKS5 0x02: connection not allowed by ruleset.
    NotAllowedByRuleset,
    /// SOCKS5 0x03: network unreachable.
    NetworkUnreachable,
    /// SOCKS5 0x04: host unreachable.
    HostUnreachable,
    /// SOCKS5 0x05: connection refused (by the target).
    ConnectionRefused,
    /// SOCKS5 0x06: TTL expired.
    TtlExpired,
    /// SOCKS5 0x07: command not supported.
    CommandNotSupported,
    /// SOCKS5 0x08: address type not supported.
    AddressTypeNotSupported,
    /// SOCKS5: the proxy accepts none of the authentication methods offered (0xFF): it wants a
    /// user name and password and none were given, or the reverse.
    NoAcceptableAuthMethod,
    /// SOCKS5 (RFC 1929): the user name and password were refused.
    AuthenticationFailed,
    /// SOCKS4 0x5B: request rejected or failed.
    Socks4Rejected,
    /// SOCKS4 0x5C: rejected because the proxy cannot reach identd on the client.
    Socks4IdentdUnreachable,
    /// SOCKS4 0x5D: rejected because identd reports another user id.
    Socks4IdentdMismatch,
}

impl SocksReply {
    /// The reply code on the wire (0xFF for "no acceptable method"; `None` for an authentication
    /// failure, whose status byte is the proxy's own).
    pub fn code(self) -> Option<u8> {
        use SocksReply as R;
        Some(match self {
            R::GeneralFailure => 0x01,
            R::NotAllowedByRuleset => 0x02,
            R::NetworkUnreachable => 0x03,
            R::HostUnreachable => 0x04,
            R::ConnectionRefused => 0x05,
            R::TtlExpired => 0x06,
            R::CommandNotSupported => 0x07,
            R::AddressTypeNotSupported => 0x08,
            R::NoAcceptableAuthMethod => 0xFF,
            R::AuthenticationFailed => return None,
            R::Socks4Rejected => 0x5B,
            R::Socks4IdentdUnreachable => 0x5C,
            R::Socks4IdentdMismatch => 0x5D,
        })
    }

    /// Whether retrying later may succeed: the target or the network may come back; a rule or
    /// a credential will not change by itself.
    pub fn is_transient(self) -> bool {
        use SocksReply as R;
        matches!(
            self,
            R::GeneralFailure | R::NetworkUnreachable | R::HostUnreachable | R::ConnectionRefused | R::TtlExpired
        )
    }
}

impl fmt::Display for SocksReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SocksReply as R;
        let name = match self {
            R::GeneralFailure => "general SOCKS server failure",
            R::NotAllowedByRuleset => "connection not allowed by ruleset",
            R::NetworkUnreachable => "network unreachable",
            R::HostUnreachable => "host unreachable",
            R::ConnectionRefused => "connection refused by the target",
            R::TtlExpired => "TTL expired",
            R::CommandNotSupported => "command not supported",
            R::AddressTypeNotSupported => "address type not supported",
            R::NoAcceptableAuthMethod => {
                "no acceptable authentication method (give a user and password in the proxy URL, or check them)"
            }
            R::AuthenticationFailed => "user name or password refused",
            R::Socks4Rejected => "request rejected or failed",
            R::Socks4IdentdUnreachable => "rejected: the proxy cannot reach identd on this machine",
            R::Socks4IdentdMismatch => "rejected: identd reports another user id",
        };
        match self.code() {
            Some(code) => write!(f, "{name} (reply 0x{code:02X})"),
            None => f.write_str(name),
        }
    }
}

impl ProxyError {
    /// An error of `kind` with the proxy `proxy` (its URL without password).
    pub fn new(proxy: impl Into<String>, kind: ProxyErrorKind) -> ProxyError {
        ProxyError { proxy: proxy.into(), kind, source: None }
    }

    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> ProxyError {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ProxyErrorKind {
        &self.kind
    }

    /// The proxy, as `scheme://host:port` (never with its password).
    pub fn proxy(&self) -> &str {
        &self.proxy
    }

    /// The proxy's HTTP answer, when it refused the `CONNECT`.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.kind {
            ProxyErrorKind::Refused(r) => Some(r),
            _ => None,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = &self.proxy;
        match &self.kind {
            ProxyErrorKind::Url(why) => write!(f, "proxy URL {proxy}: {why}"),
            ProxyErrorKind::Unreachable => {
                write!(f, "cannot reach the proxy {proxy}")?;
                if let Some(e) = &self.source {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
            ProxyErrorKind::Tls(_) => {
                write!(f, "TLS with the proxy {proxy} failed")?;
                if let Some(e) = &self.source {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
            ProxyErrorKind::Refused(r) if r.status == 401 => write!(
                f,
                "the proxy {proxy} did not accept the credentials (401 Unauthorized): check user:password in the \
                 proxy URL; it answered {r}"
            ),
            ProxyErrorKind::Refused(r) if r.status == 407 => write!(
                f,
                "the proxy {proxy} wants credentials (407 Proxy Authentication Required{}): put user:password in \
                 the proxy URL (http://user:password@host:port), or check them; it answered {r}",
                r.headers.get("proxy-authenticate").map(|c| format!(", Proxy-Authenticate: {c}")).unwrap_or_default()
            ),
            ProxyErrorKind::Refused(r) => write!(f, "the proxy {proxy} refused the CONNECT: {r}"),
            ProxyErrorKind::Socks(reply) => write!(f, "the SOCKS proxy {proxy} refused: {reply}"),
            ProxyErrorKind::Protocol(what) => write!(f, "the proxy {proxy}: {what}"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_the_proxy_answered() {
        let r = Refusal::new(407, &[("Proxy-Authenticate".into(), "Basic realm=\"x\"".into())], b"");
        let e = ProxyError::new("http://127.0.0.1:3128", ProxyErrorKind::Refused(Box::new(r)));
        let text = e.to_string();
        assert!(text.contains("407 Proxy Authentication Required") && text.contains("Basic realm"), "{text}");
        let e = ProxyError::new("socks5://p:1080", ProxyErrorKind::Socks(SocksReply::NotAllowedByRuleset));
        assert_eq!(
            e.to_string(),
            "the SOCKS proxy socks5://p:1080 refused: connection not allowed by ruleset (reply 0x02)"
        );
        assert!(SocksReply::HostUnreachable.is_transient() && !SocksReply::AuthenticationFailed.is_transient());
    }
}

/// Why a tunnel could not be opened: the proxy failed or refused, or the target's name could not
/// be resolved here (`socks4://`, `socks5://`). `?` turns it into `duplex::Error` (`Proxy` or `Io`).
#[derive(Debug)]
pub(crate) enum OpenError {
    Io(std::io::Error),
    Proxy(ProxyError),
}

impl From<ProxyError> for OpenError {
    fn from(e: ProxyError) -> Self {
        OpenError::Proxy(e)
    }
}

impl From<std::io::Error> for OpenError {
    fn from(e: std::io::Error) -> Self {
        OpenError::Io(e)
    }
}
