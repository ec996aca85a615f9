//! The client's real address when the server sits behind a proxy: [`TrustedProxies`] names the
//! peers whose word about it is taken, through the PROXY protocol (HAProxy's `send-proxy` and
//! `send-proxy-v2`, in front of TLS) or the `Forwarded` / `X-Forwarded-For` request headers (an
//! HTTP proxy: nginx, a cloud load balancer). Anyone else's word is ignored: a client that
//! connects directly cannot pick the address it is limited and logged by.
//!
//! The address found this way is the connection's [`peer_addr`](crate::UpgradeRequest::peer_addr),
//! in logs, in [`Connections`](crate::Connections) (`/list`), and for the per-address limits.
//!
//! ```
//! use duplex::TrustedProxies;
//! let proxies = TrustedProxies::new().trust("10.0.0.0/8").unwrap().trust("::1/128").unwrap();
//! assert!(proxies.contains("10.1.2.3".parse().unwrap()));
//! assert!(!proxies.contains("192.0.2.1".parse().unwrap()));
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use duplex_proto::handshake::Request;
use duplex_proto::proxy_header::{self, ProxyHeader, ProxyHeaderError};
use tokio::io::{AsyncRead, AsyncReadExt};

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`; a bare address is one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A string that is not a network in CIDR notation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCidr(String);

impl fmt::Display for InvalidCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a network: write an address with its prefix length, like 10.0.0.0/8 or fd00::/8", self.0)
    }
}

impl std::error::Error for InvalidCidr {}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Cidr, InvalidCidr> {
        let invalid = || InvalidCidr(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| invalid())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(invalid)?,
            None => max,
        };
        Ok(Cidr { network: mask(network, prefix), prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// The proxies whose word about the client's address is taken; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Cidr>,
    proxy_protocol: bool,
}

impl TrustedProxies {
    /// Nobody trusted yet.
    pub fn new() -> Self {
        TrustedProxies::default()
    }

    /// Trusts the peers in `cidr` (`10.0.0.0/8`, `127.0.0.1/32`, `::1`).
    pub fn trust(mut self, cidr: &str) -> Result<Self, InvalidCidr> {
        self.nets.push(cidr.parse()?);
        Ok(self)
    }

    /// Trusts the peers in `net`.
    pub fn trust_net(mut self, net: Cidr) -> Self {
        self.nets.push(net);
        self
    }

    /// Connections from trusted peers start with a PROXY protocol header (v1 or v2), as from
    /// HAProxy with `send-proxy` or `send-proxy-v2`: it is read before anything else (before
    /// TLS), and a connection without a valid one is closed. Off: trusted peers are HTTP proxies,
    /// and their `Forwarded` / `X-Forwarded-For` headers name the client.
    ///
    /// A PROXY header from a peer that is not trusted is never read as one: it is a malformed
    /// request (400), or a failed TLS handshake.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
    }

    /// Whether trusted peers speak the PROXY protocol.
    pub fn speaks_proxy_protocol(&self) -> bool {
        self.proxy_protocol
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The client's address according to a trusted HTTP proxy's request headers: `Forwarded`
    /// (RFC 7239) if present, else `X-Forwarded-For`. Each proxy appends the address it got the
    /// request from, so the list is read from the right, skipping the trusted proxies: the first
    /// other address is the client (anything left of it was written by the client, and proves
    /// nothing). `None` when the headers name no usable address (absent, `unknown`, obfuscated
    /// identifiers).
    pub fn client_from_headers(&self, request: &Request) -> Option<IpAddr> {
        let forwarded: Vec<IpAddr> = request.headers.get_all("forwarded").flat_map(forwarded_for).collect();
        let hops = if !forwarded.is_empty() || request.headers.get("forwarded").is_some() {
            forwarded
        } else {
            request
                .headers
                .get_all("x-forwarded-for")
                .flat_map(|v| v.split(','))
                .filter_map(|a| parse_node(a.trim()))
                .collect()
        };
        hops.iter().rev().copied().find(|ip| !self.contains(*ip))
    }
}

/// The `for=` addresses of one `Forwarded` header value, in order (RFC 7239 §4, §6).
fn forwarded_for(value: &str) -> Vec<IpAddr> {
    value
        .split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, v) = pair.trim().split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim().trim_matches('"')))?
            })
        })
        .collect()
}

/// A node as proxies write it: `192.0.2.7`, `192.0.2.7:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` or a bare `2001:db8::1`; `None` for `unknown` and obfuscated names.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[').and_then(|r| r.split(']').next()).and_then(|a| a.parse().ok())
}

/// Reads a PROXY protocol header and nothing past it (what follows is the client's: a TLS
/// handshake or an HTTP request).
pub(crate) async fn read_proxy_header<S: AsyncRead + Unpin>(io: &mut S) -> crate::Result<ProxyHeader> {
    // Enough to tell v1 from v2, and shorter than the shortest v1 header ("PROXY UNKNOWN\r\n").
    let mut buf = vec![0u8; 8];
    io.read_exact(&mut buf).await?;
    loop {
        match proxy_header::header_len(&buf).map_err(crate::Error::ProxyHeader)? {
            Some(len) => {
                let have = buf.len();
                buf.resize(len, 0);
                io.read_exact(&mut buf[have..]).await?;
                return match proxy_header::parse(&buf).map_err(crate::Error::ProxyHeader)? {
                    Some((header, _)) => Ok(header),
                    None => Err(crate::Error::ProxyHeader(ProxyHeaderError::InvalidV2("truncated"))),
                };
            }
            None => {
                // v1 is read a byte at a time until its CRLF (never past it); v2 up to its
                // fixed part, which gives its length.
                let have = buf.len();
                let more = if buf.starts_with(&proxy_header::V2_SIGNATURE[..8]) {
                    proxy_header::V2_FIXED_LEN - have
                } else {
                    1
                };
                buf.resize(have + more, 0);
                io.read_exact(&mut buf[have..]).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duplex_proto::handshake::Limits;

    fn request(headers: &str) -> Request {
        let head = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        assert!("::1".parse::<Cidr>().unwrap().contains(ip("::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("192.0.2.1")));
        assert!(!"0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("::2")));
        for bad in ["10.0.0.0/33", "::/129", "example.org/8", "10.0.0.0/", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
        let proxies = TrustedProxies::new().trust("10.0.0.0/8").unwrap();
        // The client claims 1.1.1.1; the outer proxy saw 192.0.2.7; an inner proxy (trusted) added
        // the outer one.
        let r = request("X-Forwarded-For: 1.1.1.1, 192.0.2.7\r\nX-Forwarded-For: 10.0.0.2\r\n");
        assert_eq!(proxies.client_from_headers(&r), Some(ip("192.0.2.7")));
        let r =
            request("Forwarded: for=1.1.1.1, for=\"[2001:db8::7]:4711\";proto=https\r\nX-Forwarded-For: 9.9.9.9\r\n");
        assert_eq!(proxies.client_from_headers(&r), Some(ip("2001:db8::7")), "Forwarded first");
        assert_eq!(proxies.client_from_headers(&request("Forwarded: for=unknown\r\n")), None);
        assert_eq!(
            proxies.client_from_headers(&request("Forwarded: for=_hidden, for=192.0.2.9:80\r\n")),
            Some(ip("192.0.2.9"))
        );
        assert_eq!(proxies.client_from_headers(&request("")), None);
        assert_eq!(proxies.client_from_headers(&request("X-Forwarded-For: 10.0.0.1\r\n")), None, "only proxies");
    }

    #[tokio::test]
    async fn a_proxy_header_is_read_and_nothing_after_it() {
        for header in [&b"PROXY TCP4 192.0.2.7 127.0.0.1 5000 80\r\n"[..], b"PROXY UNKNOWN\r\n"] {
            let mut input = [header, b"GET /"].concat();
            let mut io = &input[..];
            let h = read_proxy_header(&mut io).await.unwrap();
            assert_eq!(io, b"GET /", "{h:?}");
            input.clear();
        }
        let mut v2 = proxy_header::V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 7, 127, 0, 0, 1, 0x13, 0x88, 0, 80, 0x16]);
        let mut io = &v2[..];
        let h = read_proxy_header(&mut io).await.unwrap();
        assert_eq!(
            h,
            ProxyHeader::Proxied {
                source: "192.0.2.7:5000".parse().unwrap(),
                destination: "127.0.0.1:80".parse().unwrap()
            }
        );
        assert_eq!(io, [0x16], "the TLS record after it is left");
        let mut io = &b"GET / HTTP/1.1\r\n"[..];
        assert!(matches!(read_proxy_header(&mut io).await, Err(crate::Error::ProxyHeader(_))));
    }
}
