//! Proxies: a client reaches its server through an HTTP proxy (`CONNECT`, Basic credentials from
//! the URL's userinfo), an `https://` proxy (TLS to the proxy, so `wss://` is TLS inside TLS), or
//! a SOCKS proxy (`socks4://`, `socks4a://`, `socks5://` resolving names here, `socks5h://`
//! letting the proxy resolve them). By default the proxy comes from the environment, as curl
//! reads it; docs/client.md has the rules.
//!
//! ```no_run
//! # #[cfg(feature = "proxy")]
//! # async fn f() -> duplex::Result<()> {
//! use duplex::{proxy::Proxy, Client};
//! // What the environment says (the default): wss_proxy, then HTTPS_PROXY, then ALL_PROXY ...
//! let (ws, _) = Client::new().proxy(Proxy::from_env()).connect("wss://example.com/feed").await?;
//! // Always this proxy:
//! let (ws, _) = Client::new().proxy(Proxy::url("socks5h://127.0.0.1:1080")?).connect("wss://example.com/").await?;
//! // Never a proxy:
//! let (ws, _) = Client::new().proxy(Proxy::none()).connect("ws://127.0.0.1:8080/").await?;
//! # Ok(()) }
//! ```
//!
//! Built on well-kept crates rather than our own proxy protocols: hyper-util's proxy matcher
//! (proxy URLs and curl's `NO_PROXY` rules, the code reqwest uses), hyper's HTTP/1.1 client for
//! `CONNECT` (it hands back the proxy's whole answer when it refuses, which hyper-util's
//! `Tunnel` connector does not: it keeps only "unsuccessful" or "407"), and tokio-socks for SOCKS,
//! which works on any tokio stream and names every SOCKS reply code. All of it is behind the
//! cargo feature `proxy`; [`ProxyError`] is always there, so error handling compiles either way.

mod error;
pub(crate) use error::OpenError;
pub use error::{ProxyError, ProxyErrorKind, SocksReply};

#[cfg(feature = "proxy")]
mod env;
#[cfg(feature = "proxy")]
mod http;
#[cfg(feature = "proxy")]
mod socks;

#[cfg(feature = "proxy")]
pub use self::proxy_config::*;

#[cfg(feature = "proxy")]
mod proxy_config {
    use std::fmt;

    #[cfg(feature = "tls")]
    use crate::tls::Failure;
    use tokio::net::TcpStream;
    #[cfg(feature = "tls")]
    use tokio_rustls::client::TlsStream;

    use super::OpenError;
    use super::{env, ProxyError, ProxyErrorKind};
    use crate::target::Target;
    use crate::tls::client::ClientTls;

    /// Which proxy a [`Client`](crate::Client) goes through: [`Proxy::from_env`] (the default),
    /// [`Proxy::url`] or [`Proxy::none`].
    #[derive(Clone, Debug, Default)]
    pub struct Proxy(Setting);

    #[derive(Clone, Debug, Default)]
    enum Setting {
        #[default]
        FromEnv,
        None,
        Url(ProxyUrl),
    }

    impl Proxy {
        /// The proxy the environment names for each connection, read at every connect:
        /// `wss_proxy` (for `wss://`) or `ws_proxy` (for `ws://`), then `https_proxy` or
        /// `http_proxy`, then `all_proxy`, each in lower case, then upper case (`HTTP_PROXY` is
        /// ignored under CGI, where a request header could set it); an empty value counts as
        /// unset. `no_proxy`/`NO_PROXY` lists hosts reached directly, with curl's rules. No
        /// host, not even `localhost`, is reached directly unless `NO_PROXY` says so.
        pub fn from_env() -> Proxy {
            Proxy(Setting::FromEnv)
        }

        /// No proxy, whatever the environment says.
        pub fn none() -> Proxy {
            Proxy(Setting::None)
        }

        /// Always this proxy: `http://[user:password@]host[:port]` (port 80 by default),
        /// `https://...` (443), `socks4://`, `socks4a://`, `socks5://`, `socks5h://` (1080); a URL
        /// without a scheme is `http://`. User and password are percent-decoded.
        pub fn url(url: &str) -> std::result::Result<Proxy, ProxyError> {
            Ok(Proxy(Setting::Url(ProxyUrl::parse(url)?)))
        }

        /// The route to `target`, and why: what [`Client::connect`](crate::Client::connect)
        /// does, for logging or a dry run. Fails if the environment names a proxy URL that
        /// cannot be used.
        pub fn choose(&self, target: &Target) -> std::result::Result<ProxyChoice, ProxyError> {
            match &self.0 {
                Setting::None => Ok(ProxyChoice { proxy: None, why: "proxies are off".into() }),
                Setting::Url(p) => Ok(ProxyChoice { proxy: Some(p.clone()), why: "set explicitly".into() }),
                Setting::FromEnv => env::choose(target),
            }
        }
    }

    /// The route [`Proxy::choose`] picked: a proxy or none, and why (which variable, which
    /// `NO_PROXY` entry). Its `Display` is one line for a log.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ProxyChoice {
        /// The proxy, or `None` to connect directly.
        pub proxy: Option<ProxyUrl>,
        /// Why: `"HTTPS_PROXY (wss:// URL)"`, `"NO_PROXY entry 127.0.0.1 matches"`, ...
        pub why: String,
    }

    impl fmt::Display for ProxyChoice {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.proxy {
                Some(p) => write!(f, "through proxy {p} ({})", self.why),
                None => write!(f, "direct, no proxy ({})", self.why),
            }
        }
    }

    /// The protocol spoken to a proxy.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum ProxyScheme {
        /// `http://`: HTTP/1.1 `CONNECT`.
        Http,
        /// `https://`: `CONNECT` inside TLS to the proxy.
        Https,
        /// `socks4://`: SOCKS4, the name resolved here (IPv4 only).
        Socks4,
        /// `socks4a://`: SOCKS4a, the proxy resolves the name.
        Socks4a,
        /// `socks5://`: SOCKS5, the name resolved here.
        Socks5,
        /// `socks5h://`: SOCKS5, the proxy resolves the name.
        Socks5h,
    }

    impl ProxyScheme {
        /// The URL scheme.
        pub fn as_str(self) -> &'static str {
            match self {
                ProxyScheme::Http => "http",
                ProxyScheme::Https => "https",
                ProxyScheme::Socks4 => "socks4",
                ProxyScheme::Socks4a => "socks4a",
                ProxyScheme::Socks5 => "socks5",
                ProxyScheme::Socks5h => "socks5h",
            }
        }
    }

    /// A parsed proxy URL. Its `Display` and `Debug` never show the password.
    #[derive(Clone, PartialEq, Eq)]
    pub struct ProxyUrl {
        pub(crate) scheme: ProxyScheme,
        pub(crate) host: String,
        pub(crate) port: u16,
        pub(crate) auth: Auth,
    }

    /// Credentials for the proxy.
    #[derive(Clone, PartialEq, Eq)]
    pub(crate) enum Auth {
        None,
        /// HTTP(S): the `Proxy-Authorization` value, `Basic base64(user:password)`.
        Basic(::http::HeaderValue),
        /// SOCKS: user (SOCKS4: the user id) and password.
        UserPassword(String, String),
    }

    impl ProxyUrl {
        /// Parses a proxy URL (see [`Proxy::url`]), with hyper-util's parser, the one that also
        /// reads the environment.
        pub fn parse(url: &str) -> std::result::Result<ProxyUrl, ProxyError> {
            use hyper_util::client::proxy::matcher::Matcher;
            let bad = |why: &str| ProxyError::new(redact(url), ProxyErrorKind::Url(why.to_owned()));
            let matcher = Matcher::builder().all(url.to_owned()).build();
            let probe = ::http::Uri::from_static("http://probe.invalid/");
            let intercept = matcher.intercept(&probe).ok_or_else(|| {
                bad("not a usable proxy URL: write http://, https://, socks4://, socks4a://, socks5:// or \
                     socks5h://, then host[:port]")
            })?;
            let uri = intercept.uri();
            let scheme = match uri.scheme_str() {
                Some("http") => ProxyScheme::Http,
                Some("https") => ProxyScheme::Https,
                Some("socks4") => ProxyScheme::Socks4,
                Some("socks4a") => ProxyScheme::Socks4a,
                Some("socks5") => ProxyScheme::Socks5,
                Some("socks5h") => ProxyScheme::Socks5h,
                _ => return Err(bad("unknown proxy scheme")),
            };
            let host = uri.host().ok_or_else(|| bad("no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(match scheme {
                ProxyScheme::Http => 80,
                ProxyScheme::Https => 443,
                _ => 1080,
            });
            let auth = match (intercept.basic_auth(), intercept.raw_auth()) {
                (Some(basic), _) => Auth::Basic(basic.clone()),
                (None, Some((user, password))) => Auth::UserPassword(user.to_owned(), password.to_owned()),
                (None, None) => Auth::None,
            };
            Ok(ProxyUrl { scheme, host, port, auth })
        }

        /// The protocol spoken to the proxy.
        pub fn scheme(&self) -> ProxyScheme {
            self.scheme
        }

        /// The proxy's host name or address (without IPv6 brackets).
        pub fn host(&self) -> &str {
            &self.host
        }

        /// The proxy's port.
        pub fn port(&self) -> u16 {
            self.port
        }

        /// Whether the URL carries credentials.
        pub fn has_credentials(&self) -> bool {
            self.auth != Auth::None
        }
    }

    impl fmt::Display for ProxyUrl {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let user = if self.has_credentials() { "***@" } else { "" };
            if self.host.contains(':') {
                write!(f, "{}://{user}[{}]:{}", self.scheme.as_str(), self.host, self.port)
            } else {
                write!(f, "{}://{user}{}:{}", self.scheme.as_str(), self.host, self.port)
            }
        }
    }

    impl fmt::Debug for ProxyUrl {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "ProxyUrl({self})")
        }
    }

    /// A URL for an error message: the userinfo, if any, replaced.
    pub(crate) fn redact(url: &str) -> String {
        match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
            (None, Some(at)) => format!("***{}", &url[at..]),
            _ => url.to_owned(),
        }
    }

    /// The byte stream to the target, through the proxy.
    pub(crate) enum Tunnel {
        /// Over TCP to the proxy (HTTP or SOCKS): after the proxy's yes, a plain TCP stream.
        Tcp(TcpStream),
        /// Inside TLS to an `https://` proxy.
        #[cfg(feature = "tls")]
        Tls(Box<TlsStream<TcpStream>>),
    }

    /// Connects to `proxy` and asks it for a tunnel to `target`. No deadline of its own: the
    /// client runs it under its handshake timeout.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables, reason = "no TLS to an https:// proxy"))]
    pub(crate) async fn open(proxy: &ProxyUrl, target: &Target, tls: &ClientTls) -> Result<Tunnel, OpenError> {
        let unreachable =
            |e: std::io::Error| ProxyError::new(proxy.to_string(), ProxyErrorKind::Unreachable).with_source(e);
        let tcp = TcpStream::connect((proxy.host.as_str(), proxy.port)).await.map_err(unreachable)?;
        let _ = tcp.set_nodelay(true);
        match proxy.scheme {
            ProxyScheme::Http => Ok(Tunnel::Tcp(super::http::connect(tcp, proxy, target).await?)),
            #[cfg(not(feature = "tls"))]
            ProxyScheme::Https => {
                let why = crate::TlsError::config("an https:// proxy needs TLS: the cargo feature `tls`");
                let kind = ProxyErrorKind::Tls(why.kind());
                Err(ProxyError::new(proxy.to_string(), kind).with_source(why).into())
            }
            #[cfg(feature = "tls")]
            ProxyScheme::Https => {
                let tls = match tls.connect_stream(tcp, &proxy.host).await {
                    Ok(s) => s,
                    Err(Failure::Tls(e)) => {
                        let kind = ProxyErrorKind::Tls(e.kind());
                        return Err(ProxyError::new(proxy.to_string(), kind).with_source(e).into());
                    }
                    Err(Failure::Io(e)) => return Err(unreachable(e).into()),
                };
                Ok(Tunnel::Tls(Box::new(super::http::connect(tls, proxy, target).await?)))
            }
            _ => Ok(Tunnel::Tcp(super::socks::connect(tcp, proxy, target).await?)),
        }
    }
}
